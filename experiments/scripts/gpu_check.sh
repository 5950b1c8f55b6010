#!/bin/bash
# The GPU checks in one command, for a machine with an NVIDIA GPU, CUDA's nvcc and a python3 with torch and
# torchvision (any other requirement pip-installed, or as wheels in .whl/). In this order, each step's output under
# OUT (default /tmp/gpu_check):
#   1. build the native ops with CUDA for this GPU (WITH_CUDA=1, TORCH_CUDA_ARCH_LIST of the GPU);
#   2. the tests that need a GPU (CUDA against CPU: NMS, RoI pooling, the three RPN layers, a model's RPN losses);
#   3. tools/bench_ops.py: NMS and RoI pooling against torchvision, and the RPN layers, on the CPU and the GPU;
#   4. tools/bench_net.py: VGG16, a training iteration and a test image at 600x1000, ours against torchvision's
#      FasterRCNN on the same conv body, float32 and with AMP bf16;
#   5. ITERS=20 faster_rcnn_end2end.sh cuda TINY on a labelImg-layout folder it makes (60 + 20 images).
#
#   bash experiments/scripts/gpu_check.sh
# Offline (no registry there): first, here, `python -m pip download --no-deps --only-binary=:all:
# --python-version 3.12 --implementation cp --platform manylinux2014_x86_64 -d .whl easydict==1.14`; .whl/ is
# installed into /tmp/site when present.

set -x
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
export PYTHON
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "${OUT}"

if ls .whl/*.whl > /dev/null 2>&1; then
  ${PYTHON} -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:${PYTHONPATH}}
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "${OUT}/gpu.txt"
ARCH=$(${PYTHON} -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')

# 1. build
time TORCH_CUDA_ARCH_LIST=${ARCH} WITH_CUDA=1 MAX_JOBS=16 ${PYTHON} setup.py -q build_ext --inplace \
  > "${OUT}/build.txt" 2>&1 || { tail -30 "${OUT}/build.txt"; exit 1; }

# 2. the GPU tests (they skip without one; -rs lists any that still skip)
${PYTHON} -m pytest -q -rs -p no:cacheprovider tests/nms/test_gpu_nms.py tests/roi_pooling/test_roi_pooling.py \
  tests/rpn tests/fast_rcnn/test_nms_wrapper.py tests/nets/test_multi_image.py 2>&1 | tee "${OUT}/tests.txt"

# 3. kernels against torchvision
${PYTHON} tools/bench_ops.py --repeat 10 2>&1 | tee "${OUT}/bench_ops.txt"

# 4. VGG16 against torchvision's FasterRCNN (float32), then ours with bf16 autocast
${PYTHON} tools/bench_net.py --nets VGG16 --device cuda --repeat 20 --vs-torchvision 2>&1 | tee "${OUT}/bench_net.txt"
${PYTHON} tools/bench_net.py --nets VGG16 --device cuda --repeat 20 --set AMP bf16 2>&1 | tee -a "${OUT}/bench_net.txt"

# 5. a short end-to-end run on a folder in the labelImg (VOC) layout
FOLDER=/tmp/gpu_check_folder
rm -rf "${FOLDER}"
${PYTHON} -c "import sys; sys.path.insert(0, 'lib'); from datasets.shapes import generate; \
generate('${FOLDER}', num_trainval=60, num_test=20)"
ITERS=20 NPROC=1 experiments/scripts/faster_rcnn_end2end.sh cuda TINY "${FOLDER}" \
  --set EXP_DIR gpu_check TRAIN.USE_PREFETCH True TRAIN.PREFETCH_WORKERS 2 CUDNN_BENCHMARK True \
  2>&1 | tee "${OUT}/end2end.txt"
