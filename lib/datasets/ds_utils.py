"""Small box helpers used by the datasets (as the original's ds_utils), proposal-file I/O, and the project's one
way of checking and reading image files (check_image_file, read_image: the stored pixels, truncation refused).

Boxes are (N, 4) x1y1x2y2 with inclusive pixel coordinates (width = x2 - x1 + 1).
"""
from __future__ import annotations

import os
import pickle
import struct
from typing import List, Optional, Sequence, Tuple

import numpy as np


def unique_boxes(boxes: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Indices of the first occurrence of each distinct box after ``round(boxes * scale)``.

    boxes: (N, 4). Returns sorted (M,) int64 indices, M <= N (the original's hash-based dedup).
    """
    boxes = np.asarray(boxes)
    if boxes.shape[0] == 0:
        return np.zeros((0,), dtype=np.int64)
    v = np.array([1, 1e3, 1e6, 1e9])
    hashes = np.round(boxes * scale).dot(v)
    _, index = np.unique(hashes, return_index=True)
    return np.sort(index)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) [x, y, w, h] -> (N, 4) [x1, y1, x2, y2] with x2 = x + w - 1."""
    boxes = np.asarray(boxes)
    return np.hstack((boxes[:, 0:2], boxes[:, 0:2] + boxes[:, 2:4] - 1))


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) [x1, y1, x2, y2] -> (N, 4) [x, y, w, h] with w = x2 - x1 + 1."""
    boxes = np.asarray(boxes)
    return np.hstack((boxes[:, 0:2], boxes[:, 2:4] - boxes[:, 0:2] + 1))


def validate_boxes(boxes: np.ndarray, width: int = 0, height: int = 0) -> None:
    """Assert that (N, 4) boxes are well formed and lie inside a width x height image."""
    boxes = np.asarray(boxes)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    assert (x1 >= 0).all(), 'box x1 < 0'
    assert (y1 >= 0).all(), 'box y1 < 0'
    assert (x2 >= x1).all(), 'box x2 < x1'
    assert (y2 >= y1).all(), 'box y2 < y1'
    assert (x2 < width).all(), 'box x2 >= image width'
    assert (y2 < height).all(), 'box y2 >= image height'


def filter_small_boxes(boxes: np.ndarray, min_size: float) -> np.ndarray:
    """Indices of (N, 4) boxes with w >= min_size and h > min_size, w = x2 - x1 (no +1: the original's quirk)."""
    boxes = np.asarray(boxes)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    keep = np.where((w >= min_size) & (h > min_size))[0]
    return keep


def bbox_overlaps(boxes: np.ndarray, query_boxes: np.ndarray) -> np.ndarray:
    """IoU with +1 widths: boxes (N, 4), query_boxes (K, 4) -> (N, K) float64.

    Uses the compiled utils.cython_bbox when it is built, else the same computation in numpy.
    """
    boxes = np.ascontiguousarray(boxes, dtype=np.float64)
    query_boxes = np.ascontiguousarray(query_boxes, dtype=np.float64)
    try:
        from utils.cython_bbox import bbox_overlaps as _cy
    except ImportError:  # pragma: no cover - the extension is normally built
        _cy = None
    if _cy is not None:
        return _cy(boxes, query_boxes)
    n, k = boxes.shape[0], query_boxes.shape[0]
    if n == 0 or k == 0:
        return np.zeros((n, k), dtype=np.float64)
    iw = (np.minimum(boxes[:, None, 2], query_boxes[None, :, 2])
          - np.maximum(boxes[:, None, 0], query_boxes[None, :, 0]) + 1)
    ih = (np.minimum(boxes[:, None, 3], query_boxes[None, :, 3])
          - np.maximum(boxes[:, None, 1], query_boxes[None, :, 1]) + 1)
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_b = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    area_q = (query_boxes[:, 2] - query_boxes[:, 0] + 1) * (query_boxes[:, 3] - query_boxes[:, 1] + 1)
    ua = area_b[:, None] + area_q[None, :] - inter
    return np.where(inter > 0, inter / ua, 0.0)


# ----------------------------------------------------------------------------- proposal files
def save_proposals(path: str, box_list: Sequence[np.ndarray], image_ids: Optional[Sequence[str]] = None) -> None:
    """Write per-image proposals atomically as .npz (no pickle).

    box_list: N arrays (R_i, 4) [x1, y1, x2, y2] or (R_i, 5) with a score column. Stored as 'boxes'
    (sum R_i, 4) float32, 'counts' (N,) int64, when given 'scores' (sum R_i,) float32 and 'image_ids' (N,) str.
    """
    from datasets.cache import atomic_save_npz
    arrs = [np.asarray(b, dtype=np.float32).reshape(len(b), -1) if len(b) else np.zeros((0, 4), np.float32)
            for b in box_list]
    counts = np.array([a.shape[0] for a in arrs], dtype=np.int64)
    cat = np.concatenate([a[:, :4] for a in arrs], 0) if arrs else np.zeros((0, 4), np.float32)
    out = {'counts': counts, 'boxes': cat}
    if arrs and all(a.shape[1] >= 5 for a in arrs if a.shape[0]):
        out['scores'] = np.concatenate([a[:, 4] if a.shape[1] >= 5 else np.zeros(0, np.float32) for a in arrs])
    if image_ids is not None:
        if len(image_ids) != len(arrs):
            raise ValueError('{}: {} image ids for {} images of proposals'.format(path, len(image_ids), len(arrs)))
        out['image_ids'] = np.array([str(i) for i in image_ids], dtype=np.str_)
    atomic_save_npz(path, out)


def load_proposals(path: str, image_ids: Optional[Sequence[str]] = None) -> List[np.ndarray]:
    """Read per-image proposal boxes: a list of (R_i, 4) float32 arrays.

    .npz files (written by save_proposals) load without executing code. A legacy .pkl (the original's
    rpn_generate output: a list of (R_i, 4) arrays) is read by safe_pickle_load (arrays only, never code).
    ``image_ids``: the dataset's ids; a .npz that names other images (or another number of them) is an error.
    """
    if not os.path.exists(path):
        raise FileNotFoundError('proposal file not found: {}'.format(path))
    if path.endswith('.npz'):
        with np.load(path, allow_pickle=False) as z:
            boxes, counts = z['boxes'], z['counts']
            ids = [str(i) for i in z['image_ids']] if 'image_ids' in z.files else None
        if image_ids is not None and ids is not None and ids != [str(i) for i in image_ids]:
            first = next((k for k, (a, b) in enumerate(zip(ids, image_ids)) if a != str(b)), min(len(ids),
                                                                                                len(image_ids)))
            raise ValueError('{}: proposals of other images ({} images; the dataset has {}; first difference at '
                             'image {})'.format(path, len(ids), len(image_ids), first))
        ends = np.cumsum(counts)
        starts = ends - counts
        return [boxes[s:e].astype(np.float32) for s, e in zip(starts, ends)]
    data = safe_pickle_load(path)
    return [np.asarray(b, dtype=np.float32).reshape(-1, np.asarray(b).shape[-1] if np.asarray(b).ndim == 2 else 4)[:, :4]
            for b in data]


_PICKLE_ALLOWED = {
    ('numpy', 'ndarray'), ('numpy', 'dtype'), ('numpy.core.multiarray', '_reconstruct'),
    ('numpy._core.multiarray', '_reconstruct'), ('numpy.core.multiarray', 'scalar'),
    ('numpy._core.multiarray', 'scalar'), ('numpy.core.numeric', '_frombuffer'),
    ('numpy._core.numeric', '_frombuffer'), ('builtins', 'list'), ('builtins', 'tuple'), ('builtins', 'dict'),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _PICKLE_ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError('{}: refers to {}.{}; only lists, tuples, dicts and numpy arrays are '
                                     'accepted'.format(getattr(self, '_path', 'pickle'), module, name))


def safe_pickle_load(path: str):
    """Load a pickle that may only hold lists, tuples, dicts and numpy arrays (the original's detections.pkl and
    proposal .pkl files); anything else (which could run code) is refused with pickle.UnpicklingError."""
    with open(path, 'rb') as f:
        u = _ArraysOnlyUnpickler(f)
        u._path = path
        return u.load()


# ----------------------------------------------------------------------------- detections files
def save_detections(path: str, all_boxes) -> None:
    """Write all_boxes[cls][image] ((D, 5) arrays or []) atomically as .npz: 'dets' (sum D, 5) float32 and
    'counts' (K, N) int64. Loading it (load_detections) never runs code."""
    from datasets.cache import atomic_save_npz
    K, N = len(all_boxes), len(all_boxes[0]) if len(all_boxes) else 0
    counts = np.zeros((K, N), np.int64)
    parts = []
    for c in range(K):
        for i in range(N):
            d = all_boxes[c][i]
            if isinstance(d, list) and d == []:
                continue
            d = np.asarray(d, dtype=np.float32).reshape(-1, 5)
            counts[c, i] = d.shape[0]
            parts.append(d)
    dets = np.concatenate(parts, 0) if parts else np.zeros((0, 5), np.float32)
    atomic_save_npz(path, {'dets': dets, 'counts': counts})


def load_detections(path: str):
    """all_boxes[cls][image] from save_detections' .npz, or from a detections.pkl (test_net's, the original's)
    through safe_pickle_load. Images without detections of a class give []."""
    if path.endswith('.npz'):
        with np.load(path, allow_pickle=False) as z:
            counts, dets = z['counts'], z['dets']
        all_boxes, k = [], 0
        for c in range(counts.shape[0]):
            row = []
            for i in range(counts.shape[1]):
                n = int(counts[c, i])
                row.append(dets[k:k + n] if n else [])
                k += n
            all_boxes.append(row)
        return all_boxes
    return safe_pickle_load(path)


# ----------------------------------------------------------------------------- image files
# One handling of images everywhere the project reads them for training and testing: the pixels as stored, never
# rotated by an EXIF orientation tag. That is the size PIL's header reports (the size the roidb records and clips
# to) and what labelImg shows (Qt does not apply the tag unless asked), so boxes drawn there fit. An image whose
# tag says it should be shown rotated or mirrored gets one warning naming it when the annotations are loaded.
#
# A truncated (partly decodable) image is refused, naming the file: libjpeg would decode the part that is there,
# fill the rest with grey and print a warning that does not say which file. The check is structural and cheap:
#   JPEG: the markers are walked from the start to the first scan (SOS), then an end-of-image marker (FF D9) must
#         follow it; it is looked for in the last JPEG_TAIL bytes first and only then in the whole rest of the file
#         (so that data appended after the image, as in "motion photos", is accepted). FF D9 cannot occur inside
#         entropy-coded data (byte stuffing), nor is an EXIF thumbnail's FF D9 counted (it lies before the SOS).
#   PNG:  the chunks are walked by their lengths up to IEND; running past the end of the file is truncation.
#   BMP:  an uncompressed bitmap must be as long as its pixel offset plus its rows.
# Other formats get no structural check (the decoder's failure is still an error naming the file).
# Cost (2-core VM, 500x375 JPEGs of ~90 KB, files in the page cache): ~20-30 us an image for the check,
# ~40-60 us for PIL's header (size and EXIF) which the loaders read anyway; a full PIL decode takes ~1.9 ms, so the
# load-time check of 10,000 images costs ~0.3 s instead of ~19 s. At decode time (read_image) the check runs on
# the bytes already read: ~2% of the ~1.5 ms decode.

#: cv2 flags of every image read for training and testing: BGR, 3 channels, the stored pixels (no EXIF rotation).
IMREAD_FLAGS = None  # set by _cv2_flags() on first use (cv2 is imported lazily)

#: Bytes at the end of a JPEG searched first for its end-of-image marker.
JPEG_TAIL = 4096

#: EXIF orientation tag values and what a viewer applying the tag does to the stored pixels.
_ORIENTATIONS = {2: 'mirror it left-right', 3: 'rotate it 180 degrees', 4: 'mirror it top-bottom',
                 5: 'mirror it along its main diagonal', 6: 'rotate it 90 degrees clockwise',
                 7: 'mirror it along its second diagonal', 8: 'rotate it 90 degrees counter-clockwise'}


class ImageFileError(OSError):
    """An image file that cannot be used (unreadable, not an image, truncated); the message names it."""


def _cv2_flags() -> int:
    global IMREAD_FLAGS
    if IMREAD_FLAGS is None:
        import cv2
        IMREAD_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    return IMREAD_FLAGS


def _jpeg_problem(f, size: int) -> Optional[str]:
    pos = 2
    while True:
        f.seek(pos)
        m = f.read(4)
        if len(m) < 4:
            return 'truncated: the file ends at byte {} before the image data begins'.format(size)
        if m[0] != 0xFF:
            return None  # not the structure expected: left to the decoder (which skips such bytes itself)
        marker = m[1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the entropy-coded data follows
            break
        if marker == 0xD9:
            return 'no image data: an end-of-image marker comes before any scan'
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        pos += 2 + ((m[2] << 8) | m[3])
    tail_start = max(pos, size - JPEG_TAIL)
    f.seek(tail_start)
    if b'\xff\xd9' in f.read():
        return None
    # not near the end: search the whole rest (data appended after the image), 1 MiB at a time
    f.seek(pos)
    prev = b''
    while True:
        chunk = f.read(1 << 20)
        if not chunk:
            break
        if b'\xff\xd9' in prev[-1:] + chunk:
            return None
        prev = chunk
    return ('truncated: no end-of-image marker (FF D9) after the image data, the file ({} bytes) was cut short '
            '(an interrupted copy or download?): it would decode only partly'.format(size))


def _png_problem(f, size: int) -> Optional[str]:
    pos = 8
    while True:
        f.seek(pos)
        h = f.read(8)
        if len(h) < 8:
            return ('truncated: the file ({} bytes) ends before its IEND chunk (an interrupted copy or '
                    'download?): it would decode only partly'.format(size))
        length = int.from_bytes(h[:4], 'big')
        if h[4:8] == b'IEND':
            return None
        pos += 12 + length
        if pos > size:
            return ('truncated: its {!r} chunk runs past the end of the file ({} bytes; an interrupted copy or '
                    'download?): it would decode only partly'.format(h[4:8].decode('latin-1'), size))


def _bmp_problem(f, size: int) -> Optional[str]:
    f.seek(0)
    h = f.read(34)
    if len(h) < 34:
        return 'truncated: the file ({} bytes) ends inside its header'.format(size)
    off = int.from_bytes(h[10:14], 'little')
    dib = int.from_bytes(h[14:18], 'little')
    if dib < 40:
        return None  # OS/2 header: not checked
    w = int.from_bytes(h[18:22], 'little', signed=True)
    hh = int.from_bytes(h[22:26], 'little', signed=True)
    bpp = int.from_bytes(h[28:30], 'little')
    comp = int.from_bytes(h[30:34], 'little')
    if comp not in (0, 3) or w <= 0 or bpp == 0:
        return None  # compressed (RLE, JPEG, PNG inside) or odd: left to the decoder
    need = off + ((w * bpp + 31) // 32) * 4 * abs(hh)
    if size < need:
        return ('truncated: the file has {} bytes, its {}x{} pixels need {} (an interrupted copy or '
                'download?)'.format(size, w, abs(hh), need))
    return None


def image_file_problem(f, size: int) -> Optional[str]:
    """Why the image in the seekable binary file ``f`` of ``size`` bytes would decode only partly, or None.

    Structural checks of JPEG, PNG and BMP (see the comment above); None for other formats."""
    f.seek(0)
    head = f.read(8)
    if head[:3] == b'\xff\xd8\xff':
        return _jpeg_problem(f, size)
    if head == b'\x89PNG\r\n\x1a\n':
        return _png_problem(f, size)
    if head[:2] == b'BM':
        return _bmp_problem(f, size)
    return None


def orientation_note(path: str, orientation: int) -> str:
    """The warning for an image whose EXIF orientation tag is not 1."""
    from datasets.voc_xml import shown_path
    what = _ORIENTATIONS.get(orientation, 'an invalid value')
    return ('{}: EXIF orientation {} (viewers that apply it {}): the pixels are used as stored, unrotated, as '
            'labelImg shows them; check that its boxes were drawn on the unrotated picture'.format(
                shown_path(path), orientation, what))


def check_image_file(path: str) -> Tuple[int, int, int]:
    """(width, height, EXIF orientation, 1 when absent) of an image file, from its header (PIL), after checking
    that the file is whole (image_file_problem). Raises ImageFileError naming the file."""
    import PIL.Image
    from datasets.voc_xml import shown_path
    try:
        with open(path, 'rb') as f:
            size = os.fstat(f.fileno()).st_size
            problem = image_file_problem(f, size)
            if problem:
                raise ImageFileError('{}: {}'.format(shown_path(path), problem))
            f.seek(0)
            try:
                with PIL.Image.open(f) as im:
                    width, height = im.size
                    try:
                        orientation = int(im.getexif().get(0x0112, 1))
                    except Exception:  # a damaged EXIF block: the pixels are still the pixels
                        orientation = 1
            except (PIL.UnidentifiedImageError, SyntaxError, ValueError, EOFError, struct.error) as e:
                raise ImageFileError('{}: not an image file PIL can read: {}'.format(shown_path(path), e)) from None
    except ImageFileError:
        raise
    except OSError as e:
        raise ImageFileError('{}: cannot read the image: {}'.format(shown_path(path), e.strerror or e)) from None
    if width <= 0 or height <= 0:
        raise ImageFileError('{}: the image is empty ({}x{})'.format(shown_path(path), width, height))
    return width, height, orientation


def read_image(path: str) -> np.ndarray:
    """The BGR uint8 (H, W, 3) pixels of an image file as stored (no EXIF rotation: see above).

    Reads the bytes with Python (any file name works) and decodes them with cv2.imdecode. A file that cannot be
    read, is truncated (image_file_problem) or does not decode raises ImageFileError naming it."""
    import io
    import cv2
    from datasets.voc_xml import shown_path
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as e:
        raise ImageFileError('cannot read image {}: {}'.format(shown_path(path), e.strerror or e)) from None
    problem = image_file_problem(io.BytesIO(data), len(data))
    if problem:
        raise ImageFileError('image {}: {}'.format(shown_path(path), problem))
    im = None
    if data:
        try:
            im = cv2.imdecode(np.frombuffer(data, np.uint8), _cv2_flags())
        except cv2.error:
            im = None
    if im is None:
        raise ImageFileError('cannot read image {}: not an image cv2 can decode ({} bytes)'.format(
            shown_path(path), len(data)))
    return im
