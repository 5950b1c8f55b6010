"""Non-maximum suppression back-ends, all with py_cpu_nms's semantics (IoU > thresh suppresses, +1 areas).

py_cpu_nms  pure numpy, the reference
cpu_nms     Cython + C++ (built by setup.py), the same indices, much faster
gpu_nms     CUDA bitmask kernel (built with WITH_CUDA=1), the same indices, self-checked on first use per GPU
Use fast_rcnn.nms_wrapper.nms, which picks one.
"""
