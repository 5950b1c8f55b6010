"""PASCAL VOC average precision, as the original's unofficial Python evaluation (B. Hariharan).

Results are the original's on every input it handled. Departures, all on input the original could not take:
- an empty detections file gives rec = prec = empty arrays and AP 0.0 (the original crashed);
- float coordinates in the XML are read as floats (the original's int() raised); a missing <difficult> is 0;
- the annotation cache is keyed by the image set, the annotation files' contents and a format version, stored as
  JSON (not pickle) and written atomically, so it is rebuilt whenever any of them changes.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from datasets.cache import hash_files, load_json_if_key, make_key, save_json_with_key
from datasets.voc_xml import parse_voc_xml


def parse_rec(filename: str) -> List[Dict[str, Any]]:
    """Objects of one VOC XML file: [{'name', 'pose', 'truncated', 'difficult', 'bbox': [x1, y1, x2, y2]}].

    Coordinates are the XML's 1-based numbers (ints stay ints, floats stay floats); names are the text as written
    (the original compared it unstripped).
    """
    rec = parse_voc_xml(filename)
    objects = []
    for obj in rec['objects']:
        bbox = [int(v) if float(v).is_integer() else float(v) for v in obj['bbox']]
        objects.append({'name': obj['raw_name'], 'pose': obj['pose'], 'truncated': obj['truncated'],
                        'difficult': obj['difficult'], 'bbox': bbox})
    return objects


def voc_ap(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool = False) -> float:
    """AP from a recall / precision curve.

    use_07_metric: the VOC07 11-point metric (mean of the max precision at recall >= t, t = 0, 0.1, ..., 1);
    otherwise the area under the monotone precision envelope (VOC2010+).
    """
    rec = np.asarray(rec, dtype=np.float64)
    prec = np.asarray(prec, dtype=np.float64)
    if use_07_metric:
        ap = 0.
        for t in np.arange(0., 1.1, 0.1):
            if np.sum(rec >= t) == 0:
                p = 0
            else:
                p = np.max(prec[rec >= t])
            ap = ap + p / 11.
    else:
        mrec = np.concatenate(([0.], rec, [1.]))
        mpre = np.concatenate(([0.], prec, [0.]))
        for i in range(mpre.size - 1, 0, -1):
            mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
        i = np.where(mrec[1:] != mrec[:-1])[0]
        ap = np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])
    return ap


def _load_recs(annopath: str, imagenames: List[str], cachedir: Optional[str]) -> Dict[str, List[Dict[str, Any]]]:
    """parse_rec for every image, through a JSON cache keyed by the image list and the annotations' contents."""
    paths = [annopath.format(name) for name in imagenames]
    if not cachedir:
        return {name: parse_rec(p) for name, p in zip(imagenames, paths)}
    key = make_key(kind='voc_eval_annots', annopath=annopath, imagenames=imagenames, content=hash_files(paths))
    set_id = hashlib.sha1(('\n'.join([annopath] + imagenames)).encode('utf-8')).hexdigest()[:16]
    cachefile = os.path.join(cachedir, 'annots_{}.json'.format(set_id))
    recs = load_json_if_key(cachefile, key)
    if recs is None:
        recs = {}
        for i, (name, p) in enumerate(zip(imagenames, paths)):
            recs[name] = parse_rec(p)
            if i % 100 == 0:
                print('Reading annotation for {:d}/{:d}'.format(i + 1, len(imagenames)))
        print('Saving cached annotations to {:s}'.format(cachefile))
        save_json_with_key(cachefile, key, recs)
    return recs


def _read_detections(detfile: str) -> Tuple[List[str], np.ndarray, np.ndarray]:
    with open(detfile, 'r', encoding='utf-8') as f:
        lines = f.readlines()
    splitlines = [x.strip().split(' ') for x in lines if x.strip()]
    image_ids = [x[0] for x in splitlines]
    confidence = np.array([float(x[1]) for x in splitlines])
    BB = np.array([[float(z) for z in x[2:]] for x in splitlines])
    if BB.size == 0:
        BB = np.zeros((0, 4))
    return image_ids, confidence, BB


def voc_eval(detpath: str, annopath: str, imagesetfile: str, classname: str, cachedir: Optional[str],
             ovthresh: float = 0.5, use_07_metric: bool = False,
             canonical_names: bool = False,
             recs: Optional[Dict[str, List[Dict[str, Any]]]] = None) -> Tuple[np.ndarray, np.ndarray, float]:
    """rec, prec, ap = voc_eval(detpath, annopath, imagesetfile, classname, cachedir, [ovthresh], [use_07_metric])

    detpath: template of the detections file, detpath.format(classname) -> lines 'id score x1 y1 x2 y2' (1-based).
    annopath: template of the annotation file, annopath.format(imagename).
    imagesetfile: text file with one image name per line. cachedir: folder for the annotation cache (or None).
    ovthresh: a detection is a true positive when its IoU (+1 widths) with the best gt is > ovthresh.
    use_07_metric: the VOC07 11-point AP. canonical_names (added; off = the original): compare class names
    lower-cased and stripped, as the loaders do. recs (added): the ground truth, {image name: [{'name',
    'difficult', 'bbox'}, ...]} for every image of the image set, instead of the annotation files (the datasets
    pass the objects they checked, so that evaluation scores against what was validated); annopath and cachedir
    are then not used.
    Returns rec (D,), prec (D,) float64 arrays (cumulative over detections by descending score) and ap.
    """
    with open(imagesetfile, 'r', encoding='utf-8') as f:
        lines = f.readlines()
    imagenames = [x.strip() for x in lines if x.strip()]
    if recs is None:
        recs = _load_recs(annopath, imagenames, cachedir)
    else:
        absent = [n for n in imagenames if n not in recs]
        if absent:
            raise ValueError('{}: no ground truth given for the images {}'.format(imagesetfile, absent[:5]))

    def name_of(obj):
        return obj['name'].strip().lower() if canonical_names else obj['name']
    if canonical_names:
        classname = classname.strip().lower()

    # ground truth of this class, per image; 'det' marks gts already matched
    class_recs = {}
    npos = 0
    for imagename in imagenames:
        R = [obj for obj in recs[imagename] if name_of(obj) == classname]
        bbox = np.array([x['bbox'] for x in R], dtype=np.float64).reshape(-1, 4)
        difficult = np.array([x['difficult'] for x in R]).astype(bool)
        det = [False] * len(R)
        npos = npos + sum(~difficult)
        class_recs[imagename] = {'bbox': bbox, 'difficult': difficult, 'det': det}

    detfile = detpath.format(classname)
    image_ids, confidence, BB = _read_detections(detfile)

    # highest score first
    sorted_ind = np.argsort(-confidence)
    BB = BB[sorted_ind, :]
    image_ids = [image_ids[x] for x in sorted_ind]

    # greedy matching: each detection takes its best-overlapping gt if that gt is still free
    nd = len(image_ids)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    for d in range(nd):
        if image_ids[d] not in class_recs:
            raise KeyError('{}: detection for image {!r}, which is not in the image set {}'.format(
                detfile, image_ids[d], imagesetfile))
        R = class_recs[image_ids[d]]
        bb = BB[d, :].astype(float)
        ovmax = -np.inf
        BBGT = R['bbox'].astype(float)

        if BBGT.size > 0:
            # IoU with +1 widths against every gt of the class in this image
            ixmin = np.maximum(BBGT[:, 0], bb[0])
            iymin = np.maximum(BBGT[:, 1], bb[1])
            ixmax = np.minimum(BBGT[:, 2], bb[2])
            iymax = np.minimum(BBGT[:, 3], bb[3])
            iw = np.maximum(ixmax - ixmin + 1., 0.)
            ih = np.maximum(iymax - iymin + 1., 0.)
            inters = iw * ih
            uni = ((bb[2] - bb[0] + 1.) * (bb[3] - bb[1] + 1.) +
                   (BBGT[:, 2] - BBGT[:, 0] + 1.) *
                   (BBGT[:, 3] - BBGT[:, 1] + 1.) - inters)
            overlaps = inters / uni
            ovmax = np.max(overlaps)
            jmax = np.argmax(overlaps)

        if ovmax > ovthresh:
            if not R['difficult'][jmax]:
                if not R['det'][jmax]:
                    tp[d] = 1.
                    R['det'][jmax] = 1
                else:
                    fp[d] = 1.
        else:
            fp[d] = 1.

    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    with np.errstate(divide='ignore', invalid='ignore'):
        rec = tp / float(npos)
    # tp + fp is 0 while only difficult-gt detections have been seen
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    ap = voc_ap(rec, prec, use_07_metric)
    return rec, prec, ap
