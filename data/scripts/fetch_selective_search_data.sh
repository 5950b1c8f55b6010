#!/bin/bash
# Download the original's precomputed selective-search boxes (selective_search_data.tgz, 0.5 GB) into
# data/selective_search_data/: <imdb name>.mat for the PASCAL VOC sets, read by Fast R-CNN training and testing
# (experiments/scripts/fast_rcnn.sh; TRAIN/TEST.PROPOSAL_METHOD selective_search).
# The original's hosts may be gone; set URL to a mirror of selective_search_data.tgz (md5 below).
set -e

DIR="$( cd "$( dirname "${BASH_SOURCE[0]}" )/../" && pwd )"
cd "$DIR"

FILE=selective_search_data.tgz
URL=${URL:-https://dl.dropboxusercontent.com/s/orrt7o6bp6ae0tc/selective_search_data.tgz?dl=0}
CHECKSUM=7078c1db87a7851b31966b96774cd9b9

md5() {
  if command -v md5sum >/dev/null; then md5sum "$1" | awk '{ print $1 }'; else cat "$1" | md5; fi
}

if [ -f "$FILE" ] && [ "`md5 $FILE`" = "$CHECKSUM" ]; then
  echo "$FILE already exists and its checksum is correct."
else
  echo "Downloading precomputed selective search boxes (0.5G)..."
  if command -v wget >/dev/null; then wget "$URL" -O "$FILE.part"; else curl -L --fail "$URL" -o "$FILE.part"; fi
  mv "$FILE.part" "$FILE"
  if [ "`md5 $FILE`" != "$CHECKSUM" ]; then
    echo "Checksum of $FILE is wrong; delete it and try again (or another URL)."
    exit 1
  fi
fi
echo "Unzipping..."
tar zxvf "$FILE"
echo "Done: data/selective_search_data/"
