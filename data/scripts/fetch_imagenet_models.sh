#!/bin/bash
# Download ImageNet-pretrained weights into data/imagenet_models/.
#
#   data/scripts/fetch_imagenet_models.sh            # torchvision VGG16 (vgg16-397923af.pth, 528 MB)
#   data/scripts/fetch_imagenet_models.sh caffe      # the original's Caffe models (imagenet_models.tgz, 1 GB):
#                                                    # VGG16.v2.caffemodel, ZF.v2.caffemodel, VGG_CNN_M_1024.v2.caffemodel
#   data/scripts/fetch_imagenet_models.sh all
#
# tools/train_net.py --weights accepts either kind and picks the matching input convention (Caffe: BGR 0-255 minus
# the pixel means; torchvision: RGB/255 with ImageNet mean/std). The TINY network trains from scratch and needs none.
# The Caffe archive's original host (www.cs.berkeley.edu/~rbg) may be gone; set CAFFE_URL to a mirror of
# imagenet_models.tgz (md5 ed34ca912d6782edfb673a8c3a0bda6d).
set -e

DIR="$( cd "$( dirname "${BASH_SOURCE[0]}" )/../" && pwd )"
mkdir -p "$DIR/imagenet_models"
cd "$DIR"

WHAT=${1:-torchvision}

source scripts/fetch_common.sh

if [ "$WHAT" = "torchvision" ] || [ "$WHAT" = "all" ]; then
  FILE=imagenet_models/vgg16-397923af.pth
  URL=https://download.pytorch.org/models/vgg16-397923af.pth
  if [ -f "$FILE" ]; then
    echo "$FILE already exists."
  else
    echo "Downloading torchvision's ImageNet VGG16 (528 MB)..."
    fetch "$URL" "$FILE"
  fi
  # torchvision names its files after the first 8 hex digits of the sha256.
  if command -v sha256sum >/dev/null; then
    sum=`sha256sum "$FILE" | cut -c1-8`
    if [ "$sum" != "397923af" ]; then
      echo "Checksum of $FILE is wrong ($sum); delete it and run this script again."
      exit 1
    fi
  fi
  echo "VGG16 (torchvision): data/$FILE"
fi

if [ "$WHAT" = "caffe" ] || [ "$WHAT" = "all" ]; then
  FILE=imagenet_models.tgz
  URL=${CAFFE_URL:-http://www.cs.berkeley.edu/~rbg/faster-rcnn-data/$FILE}
  fetch_tgz "$URL" "$FILE" ed34ca912d6782edfb673a8c3a0bda6d "the original's pretrained ImageNet models (1G)"
  echo "Caffe models: data/imagenet_models/{VGG16,ZF,VGG_CNN_M_1024}.v2.caffemodel"
fi
