"""Any VOC-layout folder (e.g. labelled with labelImg) as a dataset: get_imdb('<path>:<split>').

The folder directly holds Annotations/<id>.xml, JPEGImages/ and ImageSets/Main/<split>.txt. The imdb name is
<basename(path)>_<split>. Classes come from <path>/classes.txt (one per line; blank lines and lines starting
with '#' are ignored; '__background__' is added first), else they are the sorted names found in all of the
folder's annotations, so every split of one folder has the same classes. Class names are compared lower-cased
and stripped. The image of <id> is JPEGImages/<filename> from the annotation, else JPEGImages/<id> with .jpg,
.jpeg, .png or .bmp. Evaluation uses the VOC07 11-point metric; results files go to <output_dir>/results/.
"""
from __future__ import annotations

import glob
import os
import os.path as osp
import warnings
from typing import List, Optional, Sequence

from datasets.cache import hash_files, load_json_if_key, make_key, save_json_with_key
from datasets.pascal_voc import skip_bad_annotations, voc_layout
from datasets.voc_xml import AnnotationError, canonical_class_name, parse_voc_xml

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.JPG', '.JPEG', '.PNG', '.BMP')


def is_voc_folder(path: str) -> bool:
    """True if ``path`` directly holds Annotations/, JPEGImages/ and ImageSets/Main/."""
    return (osp.isdir(osp.join(path, 'Annotations')) and osp.isdir(osp.join(path, 'JPEGImages'))
            and osp.isdir(osp.join(path, 'ImageSets', 'Main')))


def read_classes_file(path: str) -> List[str]:
    """Class names of a classes.txt (canonical: stripped, lower-cased), without '__background__'."""
    names: List[str] = []
    with open(path, 'r', encoding='utf-8') as f:
        for ln, line in enumerate(f, 1):
            name = canonical_class_name(line)
            if not name or name.startswith('#') or name == '__background__':
                continue
            if name in names:
                raise ValueError('{}:{}: class {!r} is listed twice'.format(path, ln, name))
            names.append(name)
    if not names:
        raise ValueError('{}: no class names in the file'.format(path))
    return names


def scan_classes(folder: str, cache_dir: Optional[str] = None) -> List[str]:
    """Sorted canonical class names found in all of folder/Annotations/*.xml (cached by the files' contents)."""
    files = sorted(glob.glob(osp.join(folder, 'Annotations', '*.xml')))
    key = make_key(kind='voc_folder_classes', files=files, content=hash_files(files),
                   skip=skip_bad_annotations())
    cache_file = None
    if cache_dir:
        import hashlib
        cache_file = osp.join(cache_dir, 'classes_{}_{}.json'.format(
            osp.basename(osp.normpath(folder)),
            hashlib.sha1(osp.abspath(folder).encode('utf-8')).hexdigest()[:12]))
        cached = load_json_if_key(cache_file, key)
        if cached is not None:
            return cached
    names = set()
    for f in files:
        try:
            rec = parse_voc_xml(f)
        except AnnotationError as e:
            if not skip_bad_annotations():
                raise
            warnings.warn('skipping {}'.format(e))
            continue
        for obj in rec['objects']:
            names.add(canonical_class_name(obj['name']))
    names.discard('__background__')
    result = sorted(names)
    if cache_file:
        save_json_with_key(cache_file, key, result)
    return result


class voc_folder(voc_layout):
    """A VOC-layout folder ``path`` with split ``image_set``; name <basename(path)>_<image_set> unless given."""

    _strict = True
    _canonical_eval_names = True

    def __init__(self, path: str, image_set: str, name: Optional[str] = None,
                 classes: Optional[Sequence[str]] = None, cache_dir: Optional[str] = None):
        path = osp.abspath(osp.expanduser(path))
        if not osp.isdir(path):
            raise FileNotFoundError('dataset folder does not exist: {}'.format(path))
        if not is_voc_folder(path):
            raise FileNotFoundError('{} is not a VOC-layout folder: it must directly hold Annotations/, '
                                    'JPEGImages/ and ImageSets/Main/<split>.txt'.format(path))
        self._devkit_path = path
        self._year = None
        if name is None:
            name = '{}_{}'.format(osp.basename(osp.normpath(path)), image_set)
        self._cache_dir = cache_dir
        classes_file = osp.join(path, 'classes.txt')
        self._classes_file = classes_file if osp.exists(classes_file) else None
        if classes is None:
            if self._classes_file:
                classes = read_classes_file(classes_file)
            else:
                classes = scan_classes(path, self.cache_path)
                if not classes:
                    raise ValueError('{}: no objects in any annotation and no classes.txt: cannot tell the '
                                     'classes'.format(path))
        classes = ['__background__'] + [canonical_class_name(c) for c in classes
                                        if canonical_class_name(c) != '__background__']
        voc_layout.__init__(self, name, image_set, path, classes, cache_dir=cache_dir)
        # a folder has no selective-search boxes: ground truth unless set_proposal_method says otherwise
        self._roidb_handler = self.gt_roidb
        if skip_bad_annotations():
            # drop the images that cannot be used now (from the cache when it is current), so that testing,
            # which never builds the roidb, does not meet them either
            self.gt_roidb()

    def _class_source(self) -> str:
        return self._classes_file or 'list (found in the annotations)'

    def _image_path_from_index(self, index: str) -> str:
        """JPEGImages/<filename of the annotation> if it exists, else JPEGImages/<index> + .jpg/.jpeg/.png/.bmp.

        Raises AnnotationError when <filename> points outside the folder, or FileNotFoundError naming what was
        tried when no image exists.
        """
        root = self._data_path
        img_dir = osp.join(root, 'JPEGImages')
        ann = self._annotation_path(index)
        tried = []
        filename = None
        if osp.exists(ann):
            filename = parse_voc_xml(ann)['filename']
        if filename:
            cand = osp.normpath(osp.join(img_dir, filename))
            if osp.isabs(filename) or not (cand + os.sep).startswith(osp.normpath(root) + os.sep):
                raise AnnotationError('{}: <filename> {!r} points outside the dataset folder {}'.format(
                    ann, filename, root))
            if osp.isfile(cand):
                return cand
            tried.append(cand)
        for ext in IMAGE_EXTS:
            cand = osp.join(img_dir, index + ext)
            if osp.isfile(cand):
                return cand
        tried += [osp.join(img_dir, index + e) for e in IMAGE_EXTS[:4]]
        raise FileNotFoundError('{}: missing image for {!r}: tried {}'.format(ann, index, ', '.join(tried)))

    def _gt_cache_key(self, index: List[str]) -> str:
        base = voc_layout._gt_cache_key(self, index)
        return make_key(base=base, classes_file=self._classes_file or '')

    # evaluation: VOC07 metric, results in <output_dir>/results, evaluated image list written beside them
    def _use_07_metric(self) -> bool:
        return True

    def _results_dir(self, output_dir: Optional[str]) -> str:
        return osp.join(output_dir or osp.join(self.cache_path, 'results'), 'results')

    def _eval_cache_dir(self) -> str:
        return osp.join(self.cache_path, 'annotations_cache')

    def _eval_image_set_file(self, output_dir: Optional[str]) -> str:
        # evaluate exactly the images of this imdb (images skipped as broken are left out)
        from datasets.cache import _atomic_write
        seen, ids = set(), []
        for i in self.image_index:
            if i not in seen:
                seen.add(i)
                ids.append(i)
        path = osp.join(self._results_dir(output_dir), '{}_{}.txt'.format(self._get_comp_id(), self._image_set))
        _atomic_write(path, lambda f: f.write(('\n'.join(ids) + '\n').encode('utf-8')))
        return path
