"""Factory for getting an imdb by name: get_imdb(name), list_imdbs().

Names:
- voc_<year>_<split>, year 2007 or 2012, split train, val, trainval, test (data/VOCdevkit<year>)
- coco_2014_{train,val,minival,valminusminival}, coco_2015_{test,test-dev} (data/coco)
- shapes_{trainval,train,val,test}: the built-in dataset, generated into data/shapes on first use
- <path>:<split> for any folder that directly holds Annotations/, JPEGImages/ and ImageSets/Main/<split>.txt;
  the imdb is named <basename(path)>_<split>
- a+b (e.g. voc_2007_trainval+voc_2012_trainval): the imdbs joined, for training
"""
from __future__ import annotations

import os.path as osp
from typing import Callable, Dict, List

from datasets.imdb import imdb

__sets: Dict[str, Callable[[], imdb]] = {}


def _voc(split: str, year: str) -> Callable[[], imdb]:
    def make():
        from datasets.pascal_voc import pascal_voc
        return pascal_voc(split, year)
    return make


def _coco(split: str, year: str) -> Callable[[], imdb]:
    def make():
        from datasets.coco import coco
        return coco(split, year)
    return make


def _shapes(split: str) -> Callable[[], imdb]:
    def make():
        from datasets.shapes import ensure_shapes
        from datasets.voc_folder import voc_folder
        return voc_folder(ensure_shapes(), split, name='shapes_' + split)
    return make


# Set up voc_<year>_<split>
for year in ['2007', '2012']:
    for split in ['train', 'val', 'trainval', 'test']:
        __sets['voc_{}_{}'.format(year, split)] = _voc(split, year)

# Set up coco_2014_<split>
for year in ['2014']:
    for split in ['train', 'val', 'minival', 'valminusminival']:
        __sets['coco_{}_{}'.format(year, split)] = _coco(split, year)

# Set up coco_2015_<split>
for year in ['2015']:
    for split in ['test', 'test-dev']:
        __sets['coco_{}_{}'.format(year, split)] = _coco(split, year)

# The built-in dataset
for split in ['trainval', 'train', 'val', 'test']:
    __sets['shapes_{}'.format(split)] = _shapes(split)


class joined_imdb(imdb):
    """Several imdbs' images and roidbs one after another (training only; the first one's classes)."""

    def __init__(self, imdbs: List[imdb]):
        imdb.__init__(self, '+'.join(d.name for d in imdbs), imdbs[0].classes)
        for d in imdbs[1:]:
            if tuple(d.classes) != tuple(imdbs[0].classes):
                raise ValueError('cannot join {} and {}: their classes differ ({} vs {})'.format(
                    imdbs[0].name, d.name, list(imdbs[0].classes), list(d.classes)))
        self._imdbs = imdbs
        self._image_index = [i for d in imdbs for i in d.image_index]
        self._roidb_handler = self._joined_roidb

    def _joined_roidb(self):
        roidb = []
        for d in self._imdbs:
            roidb.extend(d.roidb)
        self._image_index = [i for d in self._imdbs for i in d.image_index]
        return roidb

    def set_proposal_method(self, method: str) -> None:
        for d in self._imdbs:
            d.set_proposal_method(method)
        self._roidb = None

    def image_path_at(self, i: int) -> str:
        for d in self._imdbs:
            if i < d.num_images:
                return d.image_path_at(i)
            i -= d.num_images
        raise IndexError(i)

    def _get_widths(self):
        return [w for d in self._imdbs for w in d._get_widths()]

    def append_flipped_images(self) -> None:
        # flip within each part so the roidb stays [a, a flipped, b, b flipped] in step with image_path_at
        for d in self._imdbs:
            d.append_flipped_images()
        self._roidb = None
        self._image_index = [i for d in self._imdbs for i in d.image_index]


def get_imdb(name: str) -> imdb:
    """Get an imdb (image database) by name (see the module doc for the names)."""
    if ':' in name and osp.isdir(name.rsplit(':', 1)[0]):
        from datasets.voc_folder import voc_folder
        path, split = name.rsplit(':', 1)
        return voc_folder(path, split)
    if '+' in name:
        parts = [p for p in name.split('+') if p]
        if len(parts) > 1:
            return joined_imdb([get_imdb(p) for p in parts])
    if name in __sets:
        return __sets[name]()
    if ':' in name:
        path, split = name.rsplit(':', 1)
        from datasets.voc_folder import voc_folder
        if osp.isdir(path):
            return voc_folder(path, split)
        raise KeyError('Unknown dataset: {} ({} is not a folder)'.format(name, path))
    raise KeyError('Unknown dataset: {} (known: {}, or <folder>:<split>)'.format(name, ', '.join(list_imdbs())))


def list_imdbs() -> List[str]:
    """List all registered imdbs (folder datasets are not listed: any <path>:<split> works)."""
    return list(__sets.keys())
