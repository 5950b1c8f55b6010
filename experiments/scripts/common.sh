# Sourced by the experiment scripts (run from the project's root): the python to use, the device argument, the
# ImageNet weights and the CPU processes that test_net shares the images out to.

if [ -z "${PYTHON}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi

# device_args DEVICE: a GPU id (0, 1, ...), cuda, cuda:N or cpu -> the tools' --device argument
device_args() {
  case $1 in
    cpu|cuda|cuda:*) echo "--device $1" ;;
    ""|*[!0-9]*) echo "DEVICE must be a GPU id, cuda, cuda:N or cpu (got $1)" >&2; return 1 ;;
    *) echo "--device cuda:$1" ;;
  esac
}

# weights_args NET: --weights with NET's ImageNet model (nothing for TINY, which trains from scratch). WEIGHTS=path
# overrides; the default is data/imagenet_models/NET.v2.caffemodel, or for VGG16 torchvision's vgg16-397923af.pth
# (what data/scripts/fetch_imagenet_models.sh downloads by default) when the caffemodel is absent.
weights_args() {
  if [ "$1" = "TINY" ]; then return 0; fi
  local w=${WEIGHTS:-data/imagenet_models/$1.v2.caffemodel}
  if [ -z "${WEIGHTS}" ] && [ ! -f "$w" ] && [ "$1" = "VGG16" ] && [ -f data/imagenet_models/vgg16-397923af.pth ]; then
    w=data/imagenet_models/vgg16-397923af.pth
  fi
  echo "--weights $w"
}

# nproc_args NET DEVICE: test_net's --nproc (NPROC overrides; TINY on a CPU with 2+ cores: 2)
nproc_args() {
  if [ -n "${NPROC}" ]; then
    echo "--nproc ${NPROC}"
  elif [ "$1" = "TINY" ] && [ "$2" = "cpu" ] && [ "$(nproc 2>/dev/null || echo 1)" -ge 2 ]; then
    echo "--nproc 2"
  fi
}

# parse_script_args USAGE ARGS...: DEV, NET and DATASET from the first three arguments (USAGE and exit 1 without
# them), EXTRA_ARGS (the rest, handed to the tools), EXTRA_ARGS_SLUG (for the log's name) and DEVICE_ARGS.
parse_script_args() {
  local usage=$1
  shift
  DEV=$1
  NET=$2
  DATASET=$3
  if [ -z "${DEV}" ] || [ -z "${NET}" ] || [ -z "${DATASET}" ]; then
    echo "Usage: ${usage}"
    exit 1
  fi
  local array=( $@ )
  EXTRA_ARGS=${array[@]:3:${#array[@]}}
  EXTRA_ARGS_SLUG=${EXTRA_ARGS// /_}
  DEVICE_ARGS=$(device_args "${DEV}")
}
