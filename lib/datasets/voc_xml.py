"""Reading VOC / labelImg XML annotations with clear errors.

Normal input: float coordinates, a missing <difficult> (0), missing <pose>/<truncated>, extra tags, no objects.
Broken input raises AnnotationError naming the file (and the object: its index and name).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Optional, Tuple


class AnnotationError(ValueError):
    """A broken annotation (or a missing image); the message names the file and the object."""


def _text(node: Optional[ET.Element]) -> Optional[str]:
    if node is None or node.text is None:
        return None
    return node.text.strip()


def _int_flag(obj: ET.Element, tag: str, path: str, where: str) -> int:
    t = _text(obj.find(tag))
    if t is None or t == '':
        return 0
    try:
        return int(float(t))
    except ValueError:
        raise AnnotationError('{}: {}: <{}> is not a number: {!r}'.format(path, where, tag, t))


def describe_object(ix: int, name: Optional[str]) -> str:
    """'object #ix (name)' as used in error messages; ix is 0-based in the XML order."""
    return 'object #{} ({!r})'.format(ix, name)


def parse_voc_xml(path: str) -> Dict[str, Any]:
    """Parse one annotation file.

    Returns {'filename': str or None, 'size': (width, height) or None, 'objects': [...]}, each object a dict
    {'name': stripped text, 'raw_name': the text as written, 'pose', 'truncated': int, 'difficult': int,
     'bbox': (xmin, ymin, xmax, ymax) floats, 1-based as written}.
    Raises AnnotationError for an unparsable file, an object without <bndbox> or with a non-numeric or missing
    coordinate, and for a degenerate box (xmax < xmin or ymax < ymin).
    """
    try:
        tree = ET.parse(path)
    except ET.ParseError as e:
        raise AnnotationError('{}: cannot parse the XML: {}'.format(path, e))
    except OSError as e:
        raise AnnotationError('{}: cannot read the annotation: {}'.format(path, e))
    root = tree.getroot()
    filename = _text(root.find('filename'))
    size = None
    size_node = root.find('size')
    if size_node is not None:
        try:
            w = int(float(_text(size_node.find('width')) or 0))
            h = int(float(_text(size_node.find('height')) or 0))
            if w > 0 and h > 0:
                size = (w, h)
        except ValueError:
            size = None  # labelImg sometimes writes nonsense here; the image is the truth
    objects: List[Dict[str, Any]] = []
    for ix, obj in enumerate(root.findall('object')):
        name = _text(obj.find('name'))
        where = describe_object(ix, name)
        if not name:
            raise AnnotationError('{}: {}: missing or empty <name>'.format(path, where))
        bb = obj.find('bndbox')
        if bb is None:
            raise AnnotationError('{}: {}: missing <bndbox>'.format(path, where))
        coords = []
        for tag in ('xmin', 'ymin', 'xmax', 'ymax'):
            t = _text(bb.find(tag))
            if t is None or t == '':
                raise AnnotationError('{}: {}: missing <{}>'.format(path, where, tag))
            try:
                coords.append(float(t))
            except ValueError:
                raise AnnotationError('{}: {}: <{}> is not a number: {!r}'.format(path, where, tag, t))
        xmin, ymin, xmax, ymax = coords
        if xmax < xmin or ymax < ymin:
            raise AnnotationError('{}: {}: degenerate box (xmin={:g}, ymin={:g}, xmax={:g}, ymax={:g}): '
                                  'xmax < xmin or ymax < ymin'.format(path, where, xmin, ymin, xmax, ymax))
        name_node = obj.find('name')
        objects.append({'name': name,
                        'raw_name': name_node.text if name_node is not None else None,
                        'pose': _text(obj.find('pose')) or 'Unspecified',
                        'truncated': _int_flag(obj, 'truncated', path, where),
                        'difficult': _int_flag(obj, 'difficult', path, where),
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
