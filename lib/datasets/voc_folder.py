"""Any VOC-layout folder (e.g. labelled with labelImg) as a dataset: get_imdb('<path>:<split>').

The folder directly holds Annotations/<id>.xml, JPEGImages/ and ImageSets/Main/<split>.txt; or, as labelImg
leaves it, the *.xml beside the images or in one subfolder of their own, with no ImageSets (annotation_dir says
which; images are then looked up beside the XML, in the folder, its JPEGImages/ and its images/). The split
'all' is every annotated id, sorted (unless ImageSets/Main/all.txt exists); tools/make_splits.py writes
ImageSets/Main/{trainval,test}.txt. The imdb name is
<basename(path)>_<split>. Classes come from <path>/classes.txt (one per line; blank lines and lines starting
with '#' are ignored; '__background__' is added first), else they are the sorted names found in all of the
folder's annotations, so every split of one folder has the same classes. Class names are compared lower-cased
and stripped. The image of <id> is JPEGImages/<filename> from the annotation, else JPEGImages/<id> with .jpg,
.jpeg, .png or .bmp. Evaluation uses the VOC07 11-point metric; results files go to <output_dir>/results/.
Every split is checked the same way when the dataset is constructed (see datasets.pascal_voc): the image set,
the annotations, the class names (they become parts of file names: no '/', '\\', NUL, '.', '..') and the image
files (whole; read as stored, without EXIF rotation).
"""
from __future__ import annotations

import glob
import os
import os.path as osp
import warnings
from typing import List, Optional, Sequence

from datasets.cache import _atomic_write, hash_files, load_json_if_key, make_key, save_json_with_key
from datasets.pascal_voc import skip_bad_annotations, voc_layout
from datasets.voc_xml import (AnnotationError, canonical_class_name, class_name_problem, describe_object, is_utf8_name,
    parse_voc_xml, shown_path)
from fast_rcnn.config import given_or_default

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.JPG', '.JPEG', '.PNG', '.BMP')


def is_voc_folder(path: str) -> bool:
    """True if ``path`` directly holds Annotations/, JPEGImages/ and ImageSets/Main/."""
    return (osp.isdir(osp.join(path, 'Annotations')) and osp.isdir(osp.join(path, 'JPEGImages'))
            and osp.isdir(osp.join(path, 'ImageSets', 'Main')))


def _has_xml(folder: str) -> bool:
    return bool(glob.glob(osp.join(glob.escape(folder), '*.xml')))


def annotation_dir(path: str) -> Optional[str]:
    """Where the folder ``path`` keeps its annotations: Annotations/ (VOC), else ``path`` itself when it directly
    holds *.xml (labelImg's default: XML beside the images), else its one subfolder holding *.xml; None when
    there is none. Several subfolders holding *.xml are a ValueError naming them (which one is meant?)."""
    if osp.isdir(osp.join(path, 'Annotations')):
        return osp.join(path, 'Annotations')
    if _has_xml(path):
        return path
    subs = sorted(d for d in os.listdir(path) if osp.isdir(osp.join(path, d)) and _has_xml(osp.join(path, d)))
    if len(subs) > 1:
        raise ValueError('{}: XML annotations in several subfolders ({}): keep them in one'.format(
            shown_path(path), ', '.join(subs)))
    return osp.join(path, subs[0]) if subs else None


def annotated_ids(ann_dir: str) -> List[str]:
    """Sorted ids (file names without .xml) of the annotations directly in ``ann_dir``; names that are not UTF-8
    are left out (scan_classes reports them)."""
    return sorted(osp.basename(f)[:-4] for f in glob.glob(osp.join(glob.escape(ann_dir), '*.xml'))
                  if is_utf8_name(f))


def read_classes_file(path: str) -> List[str]:
    """Class names of a classes.txt (canonical: stripped, lower-cased), without '__background__'.

    Raises ValueError naming the file and line for a line that is not UTF-8, a name listed twice and a name that
    cannot be part of a file name (voc_xml.class_name_problem: '/', '\\', NUL, '.', '..', ...)."""
    names: List[str] = []
    with open(path, 'rb') as f:
        data = f.read()
    for ln, raw in enumerate(data.split(b'\n'), 1):
        try:
            line = raw.decode('utf-8')
        except UnicodeDecodeError as e:
            raise ValueError('{}:{}: the line is not UTF-8 text (byte {!r} at column {}): {!r}'.format(
                shown_path(path), ln, raw[e.start:e.start + 1], e.start + 1, raw.strip())) from None
        if ln == 1:
            line = line.lstrip('\ufeff')
        name = canonical_class_name(line)
        if not name or name.startswith('#') or name == '__background__':
            continue
        problem = class_name_problem(name)
        if problem:
            raise ValueError('{}:{}: class {!r} cannot be used: {}'.format(shown_path(path), ln, name, problem))
        if name in names:
            raise ValueError('{}:{}: class {!r} is listed twice'.format(shown_path(path), ln, name))
        names.append(name)
    if not names:
        raise ValueError('{}: no class names in the file'.format(shown_path(path)))
    return names


def scan_classes(folder: str, cache_dir: Optional[str] = None, ann_dir: Optional[str] = None,
                 skip: bool = False) -> List[str]:
    """Sorted canonical class names found in all of folder/Annotations/*.xml (cached by the files' contents).

    An annotation whose file name is not UTF-8 (no image set line could name it), that does not parse, or whose
    object's class cannot be part of a file name is an AnnotationError naming the file (and object), or with
    ``skip`` (cfg.SKIP_BAD_ANNOTATIONS) a warning, and it (or the object) is left out."""
    files = sorted(glob.glob(osp.join(glob.escape(ann_dir or osp.join(folder, 'Annotations')), '*.xml')))
    key = make_key(kind='voc_folder_classes', files=files, content=hash_files(files),
                   skip=skip)
    cache_file = None
    if cache_dir:
        import hashlib
        cache_file = osp.join(cache_dir, 'classes_{}_{}.json'.format(
            osp.basename(osp.normpath(folder)),
            hashlib.sha1(osp.abspath(folder).encode('utf-8', 'surrogateescape')).hexdigest()[:12]))
        cached = load_json_if_key(cache_file, key)
        if cached is not None:
            return cached
    names = set()

    def bad(msg: str) -> None:
        if not skip:
            raise AnnotationError(msg)
        warnings.warn('skipping {}'.format(msg))

    for f in files:
        if not is_utf8_name(f):
            bad('{}: the file name is not UTF-8: no image set line can name it; rename it'.format(shown_path(f)))
            continue
        try:
            rec = parse_voc_xml(f)
        except AnnotationError as e:
            bad(str(e))
            continue
        for ix, obj in enumerate(rec['objects']):
            name = canonical_class_name(obj['name'])
            problem = class_name_problem(name)
            if problem and name != '__background__':
                bad('{}: {}: class {!r} cannot be used: {}'.format(shown_path(f), describe_object(ix, obj['name']),
                                                                   name, problem))
                continue
            names.add(name)
    names.discard('__background__')
    result = sorted(names)
    if cache_file:
        save_json_with_key(cache_file, key, result)
    return result


def _unique_paths(paths: List[str]) -> List[str]:
    out: List[str] = []
    for p in paths:
        if osp.normpath(p) not in [osp.normpath(q) for q in out]:
            out.append(p)
    return out


class voc_folder(voc_layout):
    """A VOC-layout folder ``path`` with split ``image_set``; name <basename(path)>_<image_set> unless given."""

    _strict = True
    _canonical_eval_names = True
    _keep_eval_image_list = True

    def __init__(self, path: str, image_set: str, name: Optional[str] = None,
                 classes: Optional[Sequence[str]] = None, cache_dir: Optional[str] = None, cfg=None):
        self.cfg = given_or_default(cfg)  # cache_path (scan_classes) needs it before imdb.__init__
        path = osp.abspath(osp.expanduser(path))
        if not osp.isdir(path):
            raise FileNotFoundError('dataset folder does not exist: {}'.format(path))
        self._ann_dir = annotation_dir(path)
        if self._ann_dir is None or not _has_xml(self._ann_dir):
            raise FileNotFoundError('{} is not a VOC-layout folder: it must directly hold Annotations/, '
                                    'JPEGImages/ and ImageSets/Main/<split>.txt, or labelImg\'s XML files (beside '
                                    'the images or in one subfolder)'.format(path))
        self._voc_layout = is_voc_folder(path)
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
                classes = scan_classes(path, self.cache_path, self._ann_dir, skip=skip_bad_annotations(self.cfg))
                if not classes:
                    raise ValueError('{}: no objects in any annotation and no classes.txt: cannot tell the '
                                     'classes'.format(path))
        classes = ['__background__'] + [canonical_class_name(c) for c in classes
                                        if canonical_class_name(c) != '__background__']
        voc_layout.__init__(self, name, image_set, path, classes, cache_dir=cache_dir, cfg=self.cfg)
        # a folder has no selective-search boxes: ground truth unless set_proposal_method says otherwise
        # (voc_layout.__init__ has checked every annotation and image and dropped the images skipped, so that
        # testing, which never builds the roidb, does not meet them either)
        self._roidb_handler = self.gt_roidb

    def _class_source(self) -> str:
        return self._classes_file or 'list (found in the annotations)'

    def _annotation_path(self, index: str) -> str:
        return osp.join(self._ann_dir, index + '.xml')

    def _load_image_set_index(self) -> List[str]:
        """ImageSets/Main/<split>.txt; for 'all' without such a file, every annotated id (sorted)."""
        if self._image_set == 'all' and not osp.exists(self._image_set_file()):
            return annotated_ids(self._ann_dir)
        return voc_layout._load_image_set_index(self)

    def _image_dirs(self) -> List[str]:
        """Folders searched for images: JPEGImages/ for the VOC layout; else the annotations' folder, the folder
        itself, its JPEGImages/ and images/ (labelImg saves the XML beside the image, or in a folder of its own)."""
        root = self._data_path
        if self._voc_layout:
            return [osp.join(root, 'JPEGImages')]
        return _unique_paths([self._ann_dir, root, osp.join(root, 'JPEGImages'), osp.join(root, 'images')])

    def _image_candidates(self, index: str) -> List[str]:
        """<dir>/<filename of the annotation> (when given), then <dir>/<index> + .jpg/.jpeg/.png/.bmp for each
        of _image_dirs (JPEGImages/ for the VOC layout)
        (and their upper-case forms). Raises AnnotationError when <filename> points outside the folder."""
        root = self._data_path
        ann = self._annotation_path(index)
        cands = []
        filename = None
        if osp.exists(ann):
            filename = parse_voc_xml(ann)['filename']
        dirs = self._image_dirs()
        if filename:
            for img_dir in dirs:
                cand = osp.normpath(osp.join(img_dir, filename))
                if osp.isabs(filename) or '\0' in filename or \
                        not (cand + os.sep).startswith(osp.normpath(root) + os.sep):
                    raise AnnotationError('{}: <filename> {!r} points outside the dataset folder {}'.format(
                        shown_path(ann), filename, shown_path(root)))
                cands.append(cand)
        for img_dir in dirs:
            cands += [osp.join(img_dir, index + ext) for ext in IMAGE_EXTS]
        return cands

    def _image_path_from_index(self, index: str) -> str:
        """The first of _image_candidates that is a file; FileNotFoundError naming what was tried when none is."""
        cands = self._image_candidates(index)
        for c in cands:
            if osp.isfile(c):
                return c
        raise FileNotFoundError('{}: missing image for {!r}: tried {}'.format(
            shown_path(self._annotation_path(index)), index, ', '.join(
                c for c in cands if not c.endswith(IMAGE_EXTS[4:]))))

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
        seen, ids = set(), []
        for i in self.image_index:
            if i not in seen:
                seen.add(i)
                ids.append(i)
        path = osp.join(self._results_dir(output_dir), '{}_{}.txt'.format(self._get_comp_id(), self._image_set))
        _atomic_write(path, lambda f: f.write(('\n'.join(ids) + '\n').encode('utf-8')))
        return path
