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

source scripts/fetch_common.sh
fetch_tgz "$URL" "$FILE" "$CHECKSUM" "the original's Faster R-CNN models (695M)"
echo "Done: data/faster_rcnn_models/{VGG16,ZF}_faster_rcnn_final.caffemodel"
