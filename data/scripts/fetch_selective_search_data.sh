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

source scripts/fetch_common.sh
fetch_tgz "$URL" "$FILE" "$CHECKSUM" "precomputed selective search boxes (0.5G)"
echo "Done: data/selective_search_data/"
