"""Build lib's native extensions in place: `.venv/bin/python setup.py build_ext --inplace` (what `make setup` runs).

Always (CPU):
  utils.cython_bbox   Cython, lib/utils/bbox.pyx            bbox_overlaps
  nms.cpu_nms         Cython + C++, lib/nms/cpu_nms.pyx     exact, grid-pruned greedy NMS
  roi_pooling._C      C++ torch extension                   RoI pooling and RoIAlign forward/backward (CPU)
  nets._C             C++ torch extension                   fused GroupNorm + ReLU forward/backward (CPU)
With CUDA (WITH_CUDA=1, or unset and a GPU is visible; WITH_CUDA=0 turns it off):
  roi_pooling._C      the same module, CPU + CUDA kernels
  nms._gpu_nms        CUDA torch extension                  64-box bitmask NMS
CUDA architectures: TORCH_CUDA_ARCH_LIST if set, else DEFAULT_CUDA_ARCHS plus any visible GPU's.
A missing CUDA toolkit, or a CUDA compile that fails, skips the CUDA parts with one line; the CPU parts still
build, and the Python side falls back (loudly) at run time. Extensions whose sources did not change are not rebuilt.
"""
import os
import os.path as osp
import shutil
import subprocess
import sys

# torch's extension builder derives CUDA_HOME from the `nvcc` on PATH (/usr/local/bin/nvcc -> /usr/local), which
# then cannot find libcudart: point it at the real toolkit before torch.utils.cpp_extension is imported.
if not os.environ.get('CUDA_HOME') and not os.environ.get('CUDA_PATH') and osp.isdir('/usr/local/cuda'):
    os.environ['CUDA_HOME'] = '/usr/local/cuda'

import numpy as np  # noqa: E402
from Cython.Build import cythonize  # noqa: E402
from setuptools import Extension, setup  # noqa: E402

ROOT = osp.dirname(osp.abspath(__file__))
LIB = osp.join(ROOT, 'lib')
# Architectures built when TORCH_CUDA_ARCH_LIST is unset: Turing to Blackwell (CUDA 13 supports 7.5 and up),
# with PTX for the newest so that later GPUs can JIT it.
DEFAULT_CUDA_ARCHS = ['7.5', '8.0', '8.6', '8.9', '9.0', '10.0', '12.0+PTX']

CPU_FLAGS = ['-O3', '-ffp-contract=off']  # no fused multiply-add: NMS must round exactly as numpy does
NVCC_FLAGS = ['-O3', '--fmad=false']


def say(msg: str) -> None:
    print('setup.py: ' + msg, flush=True)


def rel(path: str) -> str:
    return osp.relpath(path, ROOT)


def cython_extensions() -> list:
    exts = []
    bbox = osp.join(LIB, 'utils', 'bbox.pyx')
    if osp.exists(bbox):
        exts.append(Extension('utils.cython_bbox', [rel(bbox)], include_dirs=[np.get_include()],
                              extra_compile_args=CPU_FLAGS))
    else:
        say('lib/utils/bbox.pyx not found; utils.cython_bbox not built')
    exts.append(Extension('nms.cpu_nms', ['lib/nms/cpu_nms.pyx'], include_dirs=[np.get_include(), 'lib/nms'],
                          depends=['lib/nms/cpu_nms_impl.h'], language='c++',
                          extra_compile_args=CPU_FLAGS + ['-std=c++17']))
    return cythonize(exts, language_level=3, quiet=True)


def cuda_wanted(torch) -> bool:
    flag = os.environ.get('WITH_CUDA', '').strip()
    if flag == '0':
        return False
    if flag == '1':
        return True
    try:
        return torch.cuda.is_available()
    except Exception:  # a broken driver must not break the CPU build
        return False


def cuda_unavailable_reason(torch, cuda_home) -> str:
    if torch.version.cuda is None:
        return 'torch %s is a CPU-only build' % torch.__version__
    if not cuda_home:
        return 'no CUDA toolkit found (set CUDA_HOME)'
    nvcc = osp.join(cuda_home, 'bin', 'nvcc')
    if not osp.exists(nvcc):
        return 'no nvcc in %s' % osp.join(cuda_home, 'bin')
    return ''


def cuda_arch_list(torch, cuda_home) -> str:
    """The TORCH_CUDA_ARCH_LIST to build for (the user's if set), as torch's builder reads it."""
    user = os.environ.get('TORCH_CUDA_ARCH_LIST', '').strip()
    if user:
        return user
    archs = list(DEFAULT_CUDA_ARCHS)
    try:  # keep only what this nvcc can build
        out = subprocess.run([osp.join(cuda_home, 'bin', 'nvcc'), '--list-gpu-arch'], capture_output=True,
                             text=True, timeout=60).stdout
        have = {line.strip().replace('compute_', '') for line in out.split()}
        if have:
            archs = [a for a in archs if a.replace('+PTX', '').replace('.', '') in have]
    except Exception:
        pass
    try:
        for i in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(i)
            cap = '%d.%d' % (major, minor)
            if cap not in [a.replace('+PTX', '') for a in archs]:
                archs.insert(0, cap)
    except Exception:
        pass
    return ';'.join(archs)


def arch_macro(arch_list: str) -> str:
    """'8.0;9.0+PTX' -> 'sm80_sm90ptx': one identifier, stringified in C++ for error messages."""
    parts = []
    for a in arch_list.replace(',', ';').replace(' ', ';').split(';'):
        if a:
            parts.append('sm' + a.replace('.', '').replace('+PTX', 'ptx').replace('+ptx', 'ptx'))
    return '_'.join(parts) or 'unknown'


def config_stamp(name: str, content: str) -> str:
    """build/config/<name>.txt holding content, rewritten (so newer) only when content changes."""
    path = osp.join('build', 'config', name + '.txt')
    old = None
    if osp.exists(path):
        with open(path) as f:
            old = f.read()
    if old != content:
        os.makedirs(osp.dirname(path), exist_ok=True)
        tmp = path + '.tmp'
        with open(tmp, 'w') as f:
            f.write(content)
        os.replace(tmp, path)
    return path


def torch_extensions():
    """(extensions, cmdclass) for the torch ops; CUDA variants when wanted and possible."""
    try:
        import torch
        from torch.utils import cpp_extension
    except Exception as e:  # pragma: no cover
        say('torch is not importable (%s); RoI pooling will use torchvision' % e)
        return [], {}
    roi_src = ['lib/roi_pooling/csrc/roi_pool.cpp', 'lib/roi_pooling/csrc/roi_align.cpp']
    roi_dep = ['lib/roi_pooling/csrc/roi_pool_cuda.h', 'lib/roi_pooling/csrc/roi_align.h']
    exts = []
    cuda = False
    if cuda_wanted(torch):
        reason = cuda_unavailable_reason(torch, cpp_extension.CUDA_HOME)
        if reason:
            say('CUDA parts skipped: ' + reason)
        else:
            cuda = True
    if cuda:
        archs = cuda_arch_list(torch, cpp_extension.CUDA_HOME)
        os.environ['TORCH_CUDA_ARCH_LIST'] = archs
        say('building CUDA ops for TORCH_CUDA_ARCH_LIST=%s (CUDA_HOME=%s)' % (archs, cpp_extension.CUDA_HOME))
        macro = ['-DWITH_CUDA', '-DFRCNN_CUDA_ARCHS_ID=' + arch_macro(archs)]
        roi = cpp_extension.CUDAExtension(
            'roi_pooling._C', roi_src + ['lib/roi_pooling/csrc/roi_pool_cuda.cu'], depends=roi_dep,
            extra_compile_args={'cxx': CPU_FLAGS + macro, 'nvcc': NVCC_FLAGS + macro})
        roi.cpu_fallback = cpp_extension.CppExtension('roi_pooling._C', roi_src, depends=roi_dep,
                                                      extra_compile_args=CPU_FLAGS)
        nms = cpp_extension.CUDAExtension(
            'nms._gpu_nms', ['lib/nms/csrc/nms_binding.cpp', 'lib/nms/csrc/nms_cuda.cu'],
            depends=['lib/nms/csrc/nms_cuda.h'],
            extra_compile_args={'cxx': CPU_FLAGS + macro, 'nvcc': NVCC_FLAGS + macro})
        nms.optional = True
        exts += [roi, nms]
    else:
        exts.append(cpp_extension.CppExtension('roi_pooling._C', roi_src, depends=roi_dep,
                                               extra_compile_args=CPU_FLAGS))

    exts.append(cpp_extension.CppExtension('nets._C', ['lib/nets/csrc/group_norm_relu.cpp'],
                                           extra_compile_args=CPU_FLAGS))

    # A change of variant (CPU <-> CUDA, archs, torch version) must rebuild even when no source changed.
    variant = 'torch %s; %s' % (torch.__version__, ('cuda ' + os.environ['TORCH_CUDA_ARCH_LIST']) if cuda else 'cpu')
    stamp = config_stamp('roi_pooling._C', variant)
    for ext in exts:
        ext.depends = list(ext.depends) + [stamp]

    class build_ext(cpp_extension.BuildExtension):
        """Falls back to the CPU variant (or skips) when a CUDA compile fails, instead of failing the install."""

        def build_extension(self, ext):
            try:
                super().build_extension(ext)
            except Exception as e:
                fallback = getattr(ext, 'cpu_fallback', None)
                if fallback is None and not getattr(ext, 'optional', False):
                    raise
                first = str(e).strip().splitlines()[-1:] or ['']
                say('CUDA build of %s failed (%s); %s' % (ext.name, first[0][:200],
                                                          'building its CPU part only' if fallback else 'skipped'))
                if fallback is not None:
                    self._prep_fallback(ext, fallback)
                    super().build_extension(ext)

        def _prep_fallback(self, ext, fallback):
            # Same module name and output path; CPU sources and flags only.
            ext.sources = fallback.sources
            ext.extra_compile_args = fallback.extra_compile_args
            ext.define_macros = fallback.define_macros
            ext.libraries = fallback.libraries
            ext.library_dirs = fallback.library_dirs
            ext.include_dirs = fallback.include_dirs
            ext.runtime_library_dirs = getattr(fallback, 'runtime_library_dirs', [])
            self._define_torch_extension_name(ext)
            self._add_compile_flag(ext, '-DTORCH_API_INCLUDE_EXTENSION_H')
            self.force = True

    return exts, {'build_ext': build_ext}


def main():
    os.chdir(ROOT)
    exts = cython_extensions()
    torch_exts, cmdclass = torch_extensions()
    setup(name='py-faster-rcnn-torch', version='0.1', package_dir={'': 'lib'}, ext_modules=exts + torch_exts,
          cmdclass=cmdclass, zip_safe=False)


if __name__ == '__main__':
    sys.exit(main())
