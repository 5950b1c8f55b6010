"""Factory for getting an imdb by name: get_imdb(name), list_imdbs().

Names:
- voc_<year>_<split>, year 2007 or 2012, split train, val, trainval, test (data/VOCdevkit<year>)
- coco_2014_{train,val,minival,valminusminival}, coco_2015_{test,test-dev} (data/coco)
- shapes_{trainval,train,val,test}: the built-in dataset, generated into data/shapes on first use
- <path>:<split> for any folder that directly holds Annotations/, JPEGImages/ and ImageSets/Main/<split>.txt,
  or labelImg's XML beside the images / in one subfolder (see datasets.voc_folder); <path>:all is every annotated
  image; the imdb is named <basename(path)>_<split>
Names that load nothing raise datasets.imdb.DatasetNotFound, one line naming the name (see get_imdb).
- a+b (e.g. voc_2007_trainval+voc_2012_trainval): the imdbs joined, for training
"""
from __future__ import annotations

import difflib
import os
import os.path as osp
from typing import Any, Callable, Dict, List

from datasets.coco import coco
from datasets.imdb import DatasetNotFound, imdb
from datasets.pascal_voc import image_id_problem, pascal_voc
from datasets.shapes import ensure_shapes
from datasets.voc_folder import annotated_ids, annotation_dir, voc_folder
from fast_rcnn.config import given_or_default

#: Where to get the datasets that are not generated here (as the original's data/README.md).
VOC_URL = 'http://host.robots.ox.ac.uk/pascal/VOC/voc{year}/'
COCO_URL = 'https://cocodataset.org/#download'

__sets: Dict[str, Callable[[Any], imdb]] = {}


def _voc(split: str, year: str) -> Callable[[Any], imdb]:
    def make(cfg):
        devkit = osp.join(cfg.DATA_DIR, 'VOCdevkit' + year)
        if not osp.isdir(osp.join(devkit, 'VOC' + year)):
            raise DatasetNotFound(voc_missing_message('voc_{}_{}'.format(year, split), year, devkit))
        return pascal_voc(split, year, cfg=cfg)
    return make


def voc_missing_message(name: str, year: str, devkit: str) -> str:
    """One line: VOC<year> is not downloaded, the folder expected and where to get the tarballs."""
    return ('{}: PASCAL VOC {} is not downloaded: expected {} (get the VOCtrainval/VOCtest tarballs from {} and '
            'unpack them in {}, or link data/VOCdevkit{} to them)'.format(
                name, year, osp.join(devkit, 'VOC' + year), VOC_URL.format(year=year), osp.dirname(devkit), year))


def _coco(split: str, year: str) -> Callable[[Any], imdb]:
    def make(cfg):
        root = osp.join(cfg.DATA_DIR, 'coco')
        prefix = 'instances' if 'test' not in split else 'image_info'
        ann = osp.join(root, 'annotations', '{}_{}{}.json'.format(prefix, split, year))
        if not osp.exists(ann):
            raise DatasetNotFound('coco_{}_{}: COCO is not downloaded: expected {} (get the annotations and images '
                                  'from {} into {}: annotations/, images/<split><year>/)'.format(
                                      year, split, ann, COCO_URL, root))
        return coco(split, year, cfg=cfg)
    return make


def _shapes(split: str) -> Callable[[Any], imdb]:
    def make(cfg):
        return voc_folder(ensure_shapes(cfg.DATA_DIR), split, name='shapes_' + split, cfg=cfg)
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
        imdb.__init__(self, '+'.join(d.name for d in imdbs), imdbs[0].classes, cfg=imdbs[0].cfg)
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


def _folder_imdb(path: str, split: str, cfg) -> imdb:
    """voc_folder(path, split); a missing split file is DatasetNotFound listing the splits that exist."""
    split_file = osp.join(path, 'ImageSets', 'Main', split + '.txt')
    main = osp.join(path, 'ImageSets', 'Main')
    ann_dir = annotation_dir(path)
    # a folder without any annotation is not a dataset at all: voc_folder says so
    # a split that is not a plain name is refused by voc_layout (its message says why), never listed here
    plain = bool(split) and '/' not in split and '\\' not in split and image_id_problem(split) is None
    if plain and split != 'all' and not osp.exists(split_file) and ann_dir is not None and annotated_ids(ann_dir):
        splits = sorted(f[:-4] for f in os.listdir(main) if f.endswith('.txt')) if osp.isdir(main) else []
        splits += [] if 'all' in splits else ['all']
        raise DatasetNotFound('{}:{}: no split {!r}: {} does not exist (splits: {}; tools/make_splits.py {} '
                              'writes trainval and test)'.format(path, split, split, split_file, ', '.join(splits),
                                                                 path))
    return voc_folder(path, split, cfg=cfg)


def get_imdb(name: str, cfg=None) -> imdb:
    """Get an imdb (image database) by name (see the module doc for the names), reading the run's ``cfg``
    (DATA_DIR, SKIP_BAD_ANNOTATIONS...; None: config.py's defaults).

    Raises DatasetNotFound (a FileNotFoundError and a KeyError; one line naming ``name``) for an unknown name
    (with close matches: 'did you mean shapes_trainval?'), a folder's missing split (the splits that exist) and
    VOC / COCO data that is not downloaded (the folder expected and where to get it)."""
    cfg = given_or_default(cfg)
    if ':' in name and osp.isdir(name.rsplit(':', 1)[0]):
        path, split = name.rsplit(':', 1)
        return _folder_imdb(path, split, cfg)
    if '+' in name:
        parts = [p for p in name.split('+') if p]
        if len(parts) > 1:
            return joined_imdb([get_imdb(p, cfg) for p in parts])
    if name in __sets:
        return __sets[name](cfg)
    if ':' in name:
        path, split = name.rsplit(':', 1)
        if osp.isdir(path):
            return _folder_imdb(path, split, cfg)
        raise DatasetNotFound('Unknown dataset: {} ({} is not a folder)'.format(name, path))
    close = difflib.get_close_matches(name, list_imdbs(), n=3, cutoff=0.6)
    hint = 'did you mean {}?'.format(' or '.join(close)) if close else 'known: {}'.format(', '.join(list_imdbs()))
    raise DatasetNotFound('Unknown dataset: {} ({}; or <folder>:<split>)'.format(name, hint))


def list_imdbs() -> List[str]:
    """List all registered imdbs (folder datasets are not listed: any <path>:<split> works)."""
    return list(__sets.keys())
