"""Builds lib's compiled extensions in place: python setup.py build_ext --inplace."""
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def lib_path(*parts):
    return os.path.join('lib', *parts)


cython_exts = [
    Extension('utils.cython_bbox', [lib_path('utils', 'bbox.pyx')], include_dirs=[np.get_include()],
              extra_compile_args=['-O3']),
]
if os.path.exists(lib_path('nms', 'cpu_nms.pyx')):
    cython_exts.append(Extension('nms.cpu_nms', [lib_path('nms', 'cpu_nms.pyx')],
                                 include_dirs=[np.get_include()], extra_compile_args=['-O3']))

setup(
    name='faster_rcnn',
    package_dir={'': 'lib'},
    ext_modules=cythonize(cython_exts, language_level=3, quiet=True),
)
