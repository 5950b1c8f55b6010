#!/bin/bash
# Usage:
# ./experiments/scripts/faster_rcnn_end2end.sh DEVICE NET DATASET [options args to {train,test}_net.py]
# DEVICE is a GPU id (0, 1, ...), cuda, cuda:N or cpu.
# NET in {ZF, VGG_CNN_M_1024, VGG16} for pascal_voc and coco; TINY for shapes (the built-in dataset).
# DATASET is either pascal_voc, coco, shapes or a labelImg / VOC-layout folder (its trainval and test splits;
# TINY uses shapes' solver, the other networks pascal_voc's).
#
# Example:
# ./experiments/scripts/faster_rcnn_end2end.sh 0 VGG16 pascal_voc \
#   --set EXP_DIR foobar RNG_SEED 42 TRAIN.SCALES "[400, 500, 600, 700]"
# ./experiments/scripts/faster_rcnn_end2end.sh cpu TINY shapes
#
# Rerunning the same command after an interruption resumes training from the newest snapshot.
# ITERS=N trains N iterations instead of the schedule's.
# WEIGHTS=path overrides the ImageNet weights (default data/imagenet_models/NET.v2.caffemodel, or for VGG16
# torchvision's vgg16-397923af.pth, which data/scripts/fetch_imagenet_models.sh downloads by default).

set -x
set -e

export PYTHONUNBUFFERED="True"

cd "$(dirname "$0")/../.."
source experiments/scripts/common.sh

parse_script_args "$0 DEVICE NET DATASET [--set KEY VALUE ...]   (DEVICE: a GPU id, cuda[:N] or cpu)" "$@"

ITERS_ARGS=""
case $DATASET in
  pascal_voc)
    TRAIN_IMDB="voc_2007_trainval"
    TEST_IMDB="voc_2007_test"
    PT_DIR="pascal_voc"
    ITERS_ARGS="--iters 70000"
    ;;
  coco)
    # This is a very long and slow training schedule
    # You can probably use fewer iterations and reduce the
    # time to the LR drop (set in the solver to 350,000 iterations).
    TRAIN_IMDB="coco_2014_train"
    TEST_IMDB="coco_2014_minival"
    PT_DIR="coco"
    ITERS_ARGS="--iters 490000"
    ;;
  shapes)
    # The built-in dataset (generated into data/shapes on first use); the solver's max_iter.
    TRAIN_IMDB="shapes_trainval"
    TEST_IMDB="shapes_test"
    PT_DIR="shapes"
    ;;
  *)
    if [ ! -d "${DATASET}" ]; then
      echo "No dataset given (pascal_voc, coco, shapes or a folder)"
      exit 1
    fi
    TRAIN_IMDB="${DATASET}:trainval"
    TEST_IMDB="${DATASET}:test"
    if [ "${NET}" = "TINY" ]; then PT_DIR="shapes"; else PT_DIR="pascal_voc"; fi
    ;;
esac
if [ -n "${ITERS}" ]; then ITERS_ARGS="--iters ${ITERS}"; fi

SOLVER=models/${PT_DIR}/${NET}/faster_rcnn_end2end/solver.yml
if [ ! -f "${SOLVER}" ]; then
  echo "No solver for ${NET} on ${DATASET}: ${SOLVER} does not exist"
  exit 1
fi
WEIGHTS_ARGS=$(weights_args "${NET}")

# Data-parallel processes (train_net.py --nproc: they share out each iteration's iter_size minibatches, the result
# is the same; test_net.py --nproc: they share out the test images). TINY's solver has iter_size 2: on a CPU with
# 2 or more cores, one process each. NPROC overrides.
PROC_ARGS=$(nproc_args "${NET}" "${DEV}")

mkdir -p experiments/logs
LOG="experiments/logs/faster_rcnn_end2end_${NET}_${EXTRA_ARGS_SLUG}.txt.`date +'%Y-%m-%d_%H-%M-%S'`"
exec &> >(tee -a "$LOG")
echo Logging output to "$LOG"

time ${PYTHON} ./tools/train_net.py ${DEVICE_ARGS} \
  --solver ${SOLVER} \
  ${WEIGHTS_ARGS} \
  --imdb ${TRAIN_IMDB} \
  ${ITERS_ARGS} \
  ${PROC_ARGS} \
  --cfg experiments/cfgs/faster_rcnn_end2end.yml \
  ${EXTRA_ARGS}

set +x
NET_FINAL=`grep "^Wrote snapshot to:" ${LOG} | tail -n 1 | awk '{print $4}'`
set -x

time ${PYTHON} ./tools/test_net.py ${DEVICE_ARGS} \
  --net ${NET_FINAL} \
  ${PROC_ARGS} \
  --imdb ${TEST_IMDB} \
  --cfg experiments/cfgs/faster_rcnn_end2end.yml \
  ${EXTRA_ARGS}
