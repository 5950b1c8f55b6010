#!/bin/bash
# Usage:
# ./experiments/scripts/faster_rcnn_alt_opt.sh DEVICE NET DATASET [options args to {train_faster_rcnn_alt_opt,test_net}.py]
# DEVICE is a GPU id (0, 1, ...), cuda, cuda:N or cpu.
# NET in {ZF, VGG_CNN_M_1024, VGG16} for pascal_voc; TINY for shapes (the built-in dataset).
# DATASET is pascal_voc or shapes (the original has no alt-opt solvers for coco).
#
# Example:
# ./experiments/scripts/faster_rcnn_alt_opt.sh 0 VGG16 pascal_voc --set EXP_DIR foobar RNG_SEED 42
# ./experiments/scripts/faster_rcnn_alt_opt.sh cpu TINY shapes
#
# The four stages' solvers are models/DATASET/NET/faster_rcnn_alt_opt/stage{1,2}_{rpn,fast_rcnn}_solver.yml.
# Rerunning the same command after an interruption skips the finished stages and resumes the one in progress.
# WEIGHTS=path overrides the ImageNet weights (default data/imagenet_models/NET.v2.caffemodel, or for VGG16
# torchvision's vgg16-397923af.pth, which data/scripts/fetch_imagenet_models.sh downloads by default).

set -x
set -e

export PYTHONUNBUFFERED="True"

cd "$(dirname "$0")/../.."
source experiments/scripts/common.sh

parse_script_args "$0 DEVICE NET DATASET [--set KEY VALUE ...]   (DEVICE: a GPU id, cuda[:N] or cpu)" "$@"

case $DATASET in
  pascal_voc)
    TRAIN_IMDB="voc_2007_trainval"
    TEST_IMDB="voc_2007_test"
    PT_DIR="pascal_voc"
    ;;
  coco)
    echo "Not implemented: the original has no alternating-optimisation solvers for COCO (use faster_rcnn_end2end.sh)"
    exit 1
    ;;
  shapes)
    TRAIN_IMDB="shapes_trainval"
    TEST_IMDB="shapes_test"
    PT_DIR="shapes"
    ;;
  *)
    echo "No dataset given (pascal_voc or shapes)"
    exit 1
    ;;
esac

if [ ! -d "models/${PT_DIR}/${NET}/faster_rcnn_alt_opt" ]; then
  echo "No alt-opt solvers for ${NET} on ${DATASET}: models/${PT_DIR}/${NET}/faster_rcnn_alt_opt does not exist"
  exit 1
fi
WEIGHTS_ARGS=$(weights_args "${NET}")

# The stage solvers of this dataset: MODELS_DIR joins the user's --set (which must come last).
SET_ARGS="--set MODELS_DIR models/${PT_DIR}"
case ${EXTRA_ARGS} in
  --set\ *) SET_ARGS="${SET_ARGS} ${EXTRA_ARGS#--set }" ;;
  "") ;;
  *) echo "Extra arguments must be --set KEY VALUE ... (got ${EXTRA_ARGS})"; exit 1 ;;
esac

TEST_PROC_ARGS=$(nproc_args "${NET}" "${DEV}")

mkdir -p experiments/logs
LOG="experiments/logs/faster_rcnn_alt_opt_${NET}_${EXTRA_ARGS_SLUG}.txt.`date +'%Y-%m-%d_%H-%M-%S'`"
exec &> >(tee -a "$LOG")
echo Logging output to "$LOG"

time ${PYTHON} ./tools/train_faster_rcnn_alt_opt.py ${DEVICE_ARGS} \
  --net_name ${NET} \
  ${WEIGHTS_ARGS} \
  --imdb ${TRAIN_IMDB} \
  --cfg experiments/cfgs/faster_rcnn_alt_opt.yml \
  ${SET_ARGS}

set +x
NET_FINAL=`grep "^Final model:" ${LOG} | tail -n 1 | awk '{print $3}'`
set -x

time ${PYTHON} ./tools/test_net.py ${DEVICE_ARGS} \
  --net ${NET_FINAL} \
  ${TEST_PROC_ARGS} \
  --imdb ${TEST_IMDB} \
  --cfg experiments/cfgs/faster_rcnn_alt_opt.yml \
  ${EXTRA_ARGS}
