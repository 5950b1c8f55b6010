"""Put lib/ on sys.path, as the original's tools/_init_paths.py did (without the Caffe path)."""
import os.path as osp
import sys


def add_path(path: str) -> None:
    if path not in sys.path:
        sys.path.insert(0, path)


this_dir = osp.dirname(osp.abspath(__file__))
add_path(osp.join(this_dir, '..', 'lib'))
