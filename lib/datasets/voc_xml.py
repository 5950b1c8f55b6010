"""Reading VOC / labelImg XML annotations with clear errors, and the checks every dataset applies to its names.

Normal input: float coordinates, a missing <difficult> (0), missing <pose>/<truncated>, extra tags (ignored), no
objects, a missing or nonsensical <size> (ignored: the image is the truth).
Broken input raises AnnotationError naming the file (and the object: its index and name): a file that cannot be
read or parsed (whatever the parser's complaint: bad bytes, truncation, an unknown or multi-byte encoding), a root
element other than <annotation>, an object without a <name> or <bndbox>, a missing, repeated, non-numeric,
non-finite (nan, inf) or implausibly large (|v| > MAX_COORD) coordinate, a degenerate box (xmax < xmin or
ymax < ymin), a <truncated>/<difficult> that is not a number.
"""
from __future__ import annotations

import math
import os
import unicodedata
import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Optional, Tuple

#: Coordinates beyond this (in absolute value) are refused: no image is that large, and float32 boxes stay exact
#: to the pixel well below it.
MAX_COORD = 1e6

#: Longest class name, in UTF-8 bytes: it becomes part of the results files' names (at most 255 bytes).
MAX_CLASS_NAME_BYTES = 128


class AnnotationError(ValueError):
    """A broken annotation (or a missing, unreadable or truncated image); the message names the file and the
    object."""


def shown_path(path: str) -> str:
    """``path`` fit for a message: bytes that are not UTF-8 (os.listdir's surrogate escapes) as \\xNN escapes."""
    try:
        path.encode('utf-8')
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode('utf-8', 'backslashreplace')


def is_utf8_name(path: str) -> bool:
    """Whether a file name from the file system is valid UTF-8 (no surrogate escapes)."""
    try:
        path.encode('utf-8')
        return True
    except UnicodeEncodeError:
        return False


def class_name_problem(name: str) -> Optional[str]:
    """Why ``name`` cannot be a class name, or None. Class names become parts of file names (the results files
    ``..._det_<split>_<class>.txt`` and ``<class>_pr.npz``), so '', '.', '..', a '/', a '\\\\', a NUL or any other
    control character and names over MAX_CLASS_NAME_BYTES bytes are refused."""
    if name in ('', '.', '..'):
        return 'a class name cannot be {!r}'.format(name)
    for ch in name:
        if ch in '/\\':
            return 'a class name cannot contain {!r} (it becomes part of a file name)'.format(ch)
        if unicodedata.category(ch) == 'Cc':
            return 'a class name cannot contain the control character {!r}'.format(ch)
        if unicodedata.category(ch) == 'Cs':
            return 'a class name must be valid UTF-8'
    if len(name.encode('utf-8')) > MAX_CLASS_NAME_BYTES:
        return 'a class name cannot be longer than {} bytes (it becomes part of a file name)'.format(
            MAX_CLASS_NAME_BYTES)
    return None


def _text(node: Optional[ET.Element]) -> Optional[str]:
    if node is None or node.text is None:
        return None
    return node.text.strip()


def _number(t: str) -> float:
    """float(t) for a finite number of at most MAX_COORD; ValueError otherwise."""
    v = float(t)
    if not math.isfinite(v):
        raise ValueError('not a finite number')
    return v


def _int_flag(obj: ET.Element, tag: str, path: str, where: str) -> int:
    t = _text(obj.find(tag))
    if t is None or t == '':
        return 0
    try:
        v = _number(t)
        if abs(v) > MAX_COORD:
            raise ValueError('too large')
        return int(v)
    except ValueError:
        raise AnnotationError('{}: {}: <{}> is not a number: {!r}'.format(path, where, tag, t)) from None


def describe_object(ix: int, name: Optional[str]) -> str:
    """'object #ix (name)' as used in error messages; ix is 0-based in the XML order."""
    return 'object #{} ({!r})'.format(ix, name)


def _only(parent: ET.Element, tag: str, path: str, where: str) -> Optional[ET.Element]:
    """The one <tag> child of ``parent`` (None if absent); several are an error (which one would be meant?)."""
    found = parent.findall(tag)
    if len(found) > 1:
        raise AnnotationError('{}: {}: {} <{}> tags (one expected)'.format(path, where, len(found), tag))
    return found[0] if found else None


def parse_voc_xml(path: str) -> Dict[str, Any]:
    """Parse one annotation file.

    Returns {'filename': str or None, 'size': (width, height) or None, 'objects': [...]}, each object a dict
    {'name': stripped text, 'raw_name': the text as written, 'pose', 'truncated': int, 'difficult': int,
     'bbox': (xmin, ymin, xmax, ymax) floats, 1-based as written}.
    Raises AnnotationError (see the module doc) naming ``path``.
    """
    shown = shown_path(path)
    try:
        tree = ET.parse(path)
    except ET.ParseError as e:
        raise AnnotationError('{}: cannot parse the XML: {}'.format(shown, e)) from None
    except OSError as e:
        raise AnnotationError('{}: cannot read the annotation: {}'.format(shown, e.strerror or e)) from None
    except (ValueError, LookupError) as e:  # 'multi-byte encodings are not supported', 'unknown encoding: x'
        raise AnnotationError('{}: cannot parse the XML: {}'.format(shown, e)) from None
    root = tree.getroot()
    if root.tag != 'annotation':
        raise AnnotationError('{}: not a VOC annotation: the root element is <{}>, not <annotation>'.format(
            shown, root.tag))
    filename = _text(root.find('filename'))
    size = None
    size_node = root.find('size')
    if size_node is not None:
        try:
            w = _number(_text(size_node.find('width')) or '0')
            h = _number(_text(size_node.find('height')) or '0')
            if 0 < w <= MAX_COORD and 0 < h <= MAX_COORD:
                size = (int(w), int(h))
        except ValueError:
            size = None  # labelImg sometimes writes nonsense here; the image is the truth
        if size is not None and (size[0] <= 0 or size[1] <= 0):
            size = None
    objects: List[Dict[str, Any]] = []
    for ix, obj in enumerate(root.findall('object')):
        name_node = _only(obj, 'name', shown, describe_object(ix, None))
        name = _text(name_node)
        where = describe_object(ix, name)
        if not name:
            raise AnnotationError('{}: {}: missing or empty <name>'.format(shown, where))
        bb = _only(obj, 'bndbox', shown, where)
        if bb is None:
            raise AnnotationError('{}: {}: missing <bndbox>'.format(shown, where))
        coords = []
        for tag in ('xmin', 'ymin', 'xmax', 'ymax'):
            t = _text(_only(bb, tag, shown, where))
            if t is None or t == '':
                raise AnnotationError('{}: {}: missing <{}>'.format(shown, where, tag))
            try:
                v = _number(t)
            except ValueError:
                raise AnnotationError('{}: {}: <{}> is not a finite number: {!r}'.format(
                    shown, where, tag, t)) from None
            if abs(v) > MAX_COORD:
                raise AnnotationError('{}: {}: <{}> is implausibly large: {!r} (more than {:g} in absolute '
                                      'value)'.format(shown, where, tag, t, MAX_COORD))
            coords.append(v)
        xmin, ymin, xmax, ymax = coords
        if xmax < xmin or ymax < ymin:
            raise AnnotationError('{}: {}: degenerate box (xmin={:g}, ymin={:g}, xmax={:g}, ymax={:g}): '
                                  'xmax < xmin or ymax < ymin'.format(shown, where, xmin, ymin, xmax, ymax))
        objects.append({'name': name,
                        'raw_name': name_node.text,
                        'pose': _text(obj.find('pose')) or 'Unspecified',
                        'truncated': _int_flag(obj, 'truncated', shown, where),
                        'difficult': _int_flag(obj, 'difficult', shown, where),
                        'bbox': (xmin, ymin, xmax, ymax)})
    return {'filename': filename, 'size': size, 'objects': objects}


def canonical_class_name(name: str) -> str:
    """The loader's class key: lower-cased and stripped (as the original's _load_pascal_annotation)."""
    return name.strip().lower()


def image_size(path: str) -> Tuple[int, int]:
    """(width, height) of an image file, reading only its header (PIL)."""
    import PIL.Image
    with PIL.Image.open(path) as im:
        return im.size
