"""Test helpers that write small VOC-layout folders (annotations written by hand, images as solid PNG/JPEG)."""
import os
import os.path as osp

import cv2
import numpy as np


def write_image(path, width, height):
    os.makedirs(osp.dirname(path), exist_ok=True)
    im = np.full((height, width, 3), 127, np.uint8)
    assert cv2.imwrite(path, im)


def xml_for(objects, filename=None, size=None, extra=''):
    """objects: list of dicts name, bbox (xmin, ymin, xmax, ymax as written), difficult (None = no tag), extra."""
    s = ['<annotation>', '<folder>VOC</folder>']
    if filename is not None:
        s.append('<filename>{}</filename>'.format(filename))
    if size is not None:
        s.append('<size><width>{}</width><height>{}</height><depth>3</depth></size>'.format(*size))
    s.append(extra)
    for o in objects:
        s.append('<object><name>{}</name>'.format(o['name']))
        s.append(o.get('extra', '<pose>Unspecified</pose><truncated>0</truncated>'))
        if o.get('difficult') is not None:
            s.append('<difficult>{}</difficult>'.format(o['difficult']))
        s.append('<bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox>'.format(*o['bbox']))
        s.append('</object>')
    s.append('</annotation>')
    return '\n'.join(s)


def write_annotation(root, image_id, objects, **kw):
    os.makedirs(osp.join(root, 'Annotations'), exist_ok=True)
    with open(osp.join(root, 'Annotations', image_id + '.xml'), 'w') as f:
        f.write(xml_for(objects, **kw))


def write_image_set(root, split, ids):
    os.makedirs(osp.join(root, 'ImageSets', 'Main'), exist_ok=True)
    with open(osp.join(root, 'ImageSets', 'Main', split + '.txt'), 'w') as f:
        f.write(''.join(i + '\n' for i in ids))




def write_mini_set(root):
    """The two-image 'test' split of the evaluation tests: i0 holds a (1, 1, 10, 10) and b (21, 21, 40, 40), i1 holds
    a (11, 11, 30, 30); 50 x 50 images. Returns root."""
    write_annotation(root, 'i0', [{'name': 'a', 'bbox': (1, 1, 10, 10)}, {'name': 'b', 'bbox': (21, 21, 40, 40)}])
    write_annotation(root, 'i1', [{'name': 'a', 'bbox': (11, 11, 30, 30)}])
    for i in ('i0', 'i1'):
        write_image(osp.join(root, 'JPEGImages', i + '.jpg'), 50, 50)
    write_image_set(root, 'test', ['i0', 'i1'])
    return root
