#!/bin/bash
# Download the original's trained Faster R-CNN models (faster_rcnn_models.tgz, 695 MB) into data/faster_rcnn_models/:
# VGG16_faster_rcnn_final.caffemodel and ZF_faster_rcnn_final.caffemodel (alternating optimisation, VOC 2007
# trainval). tools/test_net.py --net and tools/demo.py --net vgg16|zf take them as they are.
# The original's hosts may be gone; set URL to a mirror of faster_rcnn_models.tgz (md5 below).
set -e

DIR="$( cd "$( dirname "${BASH_SOURCE[0]}" )/../" && pwd )"
cd "$DIR"

FILE=faster_rcnn_models.tgz
URL=${URL:-https://dl.dropboxusercontent.com/s/o6ii098bu51d139/faster_rcnn_models.tgz?dl=0}
CHECKSUM=ac116844f66aefe29587214272054668

md5() {
  if command -v md5sum >/dev/null; then md5sum "$1" | awk '{ print $1 }'; else cat "$1" | md5; fi
}

if [ -f "$FILE" ] && [ "`md5 $FILE`" = "$CHECKSUM" ]; then
  echo "$FILE already exists and its checksum is correct."
else
  echo "Downloading the original's Faster R-CNN models (695M)..."
  if command -v wget >/dev/null; then wget "$URL" -O "$FILE.part"; else curl -L --fail "$URL" -o "$FILE.part"; fi
  mv "$FILE.part" "$FILE"
  if [ "`md5 $FILE`" != "$CHECKSUM" ]; then
    echo "Checksum of $FILE is wrong; delete it and try again (or another URL)."
    exit 1
  fi
fi
echo "Unzipping..."
tar zxvf "$FILE"
echo "Done: data/faster_rcnn_models/{VGG16,ZF}_faster_rcnn_final.caffemodel"
