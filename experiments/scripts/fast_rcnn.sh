#!/bin/bash
# Usage:
# ./experiments/scripts/fast_rcnn.sh DEVICE NET DATASET [options args to {train,test}_net.py]
# DEVICE is a GPU id (0, 1, ...), cuda, cuda:N or cpu.
# NET in {ZF, VGG_CNN_M_1024, VGG16} for pascal_voc (VGG16, VGG_CNN_M_1024 for coco); TINY for shapes.
# DATASET is pascal_voc, coco or shapes.
#
# Fast R-CNN on external proposals, with the default cfg as the original (TRAIN/TEST.HAS_RPN False): the
# dataset's selective-search boxes (data/scripts/fetch_selective_search_data.sh), or, with RPN_NET=SNAPSHOT,
# the proposals of that network's RPN (rpn_generate.py on the train and test sets first).
#
# Example:
# ./experiments/scripts/fast_rcnn.sh 0 VGG16 pascal_voc --set EXP_DIR foobar RNG_SEED 42
# RPN_NET=output/faster_rcnn_end2end/shapes_trainval/tiny_faster_rcnn_iter_4000.pth \
#   ./experiments/scripts/fast_rcnn.sh cpu TINY shapes
#
# WEIGHTS=path overrides the ImageNet weights (default data/imagenet_models/NET.v2.caffemodel, or for VGG16
# torchvision's vgg16-397923af.pth, which data/scripts/fetch_imagenet_models.sh downloads by default).
# Rerunning the same command after an interruption resumes training from the newest snapshot.

set -x
set -e

export PYTHONUNBUFFERED="True"

cd "$(dirname "$0")/../.."
source experiments/scripts/common.sh

parse_script_args "[RPN_NET=SNAPSHOT] $0 DEVICE NET DATASET [--set KEY VALUE ...]   (DEVICE: a GPU id, cuda[:N] or cpu)" "$@"

case $DATASET in
  pascal_voc)
    TRAIN_IMDB="voc_2007_trainval"
    TEST_IMDB="voc_2007_test"
    PT_DIR="pascal_voc"
    ;;
  coco)
    TRAIN_IMDB="coco_2014_train"
    TEST_IMDB="coco_2014_minival"
    PT_DIR="coco"
    ;;
  shapes)
    TRAIN_IMDB="shapes_trainval"
    TEST_IMDB="shapes_test"
    PT_DIR="shapes"
    ;;
  *)
    echo "No dataset given (pascal_voc, coco or shapes)"
    exit 1
    ;;
esac

SOLVER=models/${PT_DIR}/${NET}/fast_rcnn/solver.yml
if [ ! -f "${SOLVER}" ]; then
  echo "No solver for ${NET} on ${DATASET}: ${SOLVER} does not exist"
  exit 1
fi
WEIGHTS_ARGS=$(weights_args "${NET}")
TEST_PROC_ARGS=$(nproc_args "${NET}" "${DEV}")

mkdir -p experiments/logs
LOG="experiments/logs/fast_rcnn_${NET}_${EXTRA_ARGS_SLUG}.txt.`date +'%Y-%m-%d_%H-%M-%S'`"
exec &> >(tee -a "$LOG")
echo Logging output to "$LOG"

TRAIN_PROPOSALS=""
TEST_PROPOSALS=""
if [ -n "${RPN_NET}" ]; then
  for IMDB in ${TRAIN_IMDB} ${TEST_IMDB}; do
    time ${PYTHON} ./tools/rpn_generate.py ${DEVICE_ARGS} --net ${RPN_NET} --imdb ${IMDB}
  done
  set +x
  TRAIN_PROPOSALS="--proposals `grep "^Wrote RPN proposals to:" ${LOG} | tail -n 2 | head -n 1 | awk '{print $5}'`"
  TEST_PROPOSALS="--proposals `grep "^Wrote RPN proposals to:" ${LOG} | tail -n 1 | awk '{print $5}'`"
  set -x
fi

time ${PYTHON} ./tools/train_net.py ${DEVICE_ARGS} \
  --solver ${SOLVER} \
  ${WEIGHTS_ARGS} \
  --imdb ${TRAIN_IMDB} \
  ${TRAIN_PROPOSALS} \
  ${EXTRA_ARGS}

set +x
NET_FINAL=`grep "^Wrote snapshot to:" ${LOG} | tail -n 1 | awk '{print $4}'`
set -x

time ${PYTHON} ./tools/test_net.py ${DEVICE_ARGS} \
  --net ${NET_FINAL} \
  ${TEST_PROC_ARGS} \
  --imdb ${TEST_IMDB} \
  ${TEST_PROPOSALS} \
  ${EXTRA_ARGS}
