"""ImageNet initialisation: map pre-trained weights onto our layers and pick the matching input convention.

Accepted files (``load_pretrained(model, path)``):
- torchvision ImageNet state dicts (``vgg16-397923af.pth``: ``features.<i>.weight``, ``classifier.{0,3}.weight``)
  -> the model converts its Caffe-style input blob to RGB/255 with ImageNet mean/std (input mode 'torchvision');
- Caffe models: ``<NET>.v2.caffemodel`` (parsed directly from the protobuf wire format, no Caffe needed) or a
  converted ``.pth``/``.npz`` whose keys are Caffe layer names (``conv1_1.weight``/``conv1_1.bias``,
  ``conv1_1.0``/``conv1_1.1``, or ``conv1_1`` -> [weight, bias]) -> input mode 'caffe' (BGR 0-255 minus
  PIXEL_MEANS, as the original);
- a snapshot of this project (``format`` key) -> its weights, as fine-tuning.
Layers the file does not have keep their initialisation (the RPN and the cls_score/bbox_pred heads, as the
original); a weight whose shape differs from ours is an error naming it.
"""
from __future__ import annotations

import os.path as osp
import struct
from typing import Dict, List, Tuple

import numpy as np
import torch

# torchvision VGG16 feature indices of the 13 convolutions.
_TV_VGG16_CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
_VGG16_NAMES = ['conv1_1', 'conv1_2', 'conv2_1', 'conv2_2', 'conv3_1', 'conv3_2', 'conv3_3', 'conv4_1', 'conv4_2',
                'conv4_3', 'conv5_1', 'conv5_2', 'conv5_3']


class WeightsError(ValueError):
    """A weights file that does not fit the network."""


# ----------------------------------------------------------------------------- caffemodel (protobuf wire format)
def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes):
    """Yield (field number, wire type, value) of a protobuf message; value is bytes for length-delimited fields."""
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        field, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            val = buf[pos:pos + 8]
            pos += 8
        elif wt == 2:
            ln, pos = _varint(buf, pos)
            val = buf[pos:pos + ln]
            pos += ln
        elif wt == 5:
            val = buf[pos:pos + 4]
            pos += 4
        else:
            raise WeightsError('caffemodel: unsupported protobuf wire type {}'.format(wt))
        yield field, wt, val


def _parse_blob(buf: bytes) -> np.ndarray:
    legacy = {1: 1, 2: 1, 3: 1, 4: 1}
    shape: List[int] = []
    data: List[np.ndarray] = []
    for f, wt, v in _fields(buf):
        if f in legacy and wt == 0:
            legacy[f] = v
        elif f == 7:  # BlobShape
            for f2, wt2, v2 in _fields(v):
                if f2 == 1 and wt2 == 2:
                    p = 0
                    while p < len(v2):
                        d, p = _varint(v2, p)
                        shape.append(d)
                elif f2 == 1 and wt2 == 0:
                    shape.append(v2)
        elif f == 5:
            data.append(np.frombuffer(v, dtype='<f4') if wt == 2 else np.array(struct.unpack('<f', v), '<f4'))
        elif f == 8:
            data.append(np.frombuffer(v, dtype='<f8').astype(np.float32) if wt == 2
                        else np.array(struct.unpack('<d', v), np.float32))
    arr = np.concatenate(data) if data else np.zeros(0, np.float32)
    if not shape:
        shape = [legacy[1], legacy[2], legacy[3], legacy[4]]
    return arr.reshape(shape)


def read_caffemodel(path: str) -> Dict[str, List[np.ndarray]]:
    """Layer name -> list of blobs (weights, bias) from a binary .caffemodel (new ``layer`` or V1 ``layers``)."""
    with open(path, 'rb') as f:
        buf = f.read()
    out: Dict[str, List[np.ndarray]] = {}
    for field, wt, v in _fields(buf):
        if wt != 2 or field not in (100, 2):
            continue
        name_field, blob_field = (1, 7) if field == 100 else (4, 6)
        name, blobs = None, []
        for f2, wt2, v2 in _fields(v):
            if f2 == name_field and wt2 == 2:
                name = v2.decode('utf-8', 'replace')
            elif f2 == blob_field and wt2 == 2:
                blobs.append(_parse_blob(v2))
        if name and blobs:
            out[name] = blobs
    if not out:
        raise WeightsError('{}: no layers with weights found (is it a binary .caffemodel?)'.format(path))
    return out


# ----------------------------------------------------------------------------- mapping
def _caffe_layers_from_dict(d: Dict[str, object]) -> Dict[str, List[np.ndarray]]:
    out: Dict[str, List[np.ndarray]] = {}
    for k, v in d.items():
        if isinstance(v, (list, tuple)):
            out[k] = [np.asarray(x.numpy() if torch.is_tensor(x) else x, np.float32) for x in v]
            continue
        arr = np.asarray(v.numpy() if torch.is_tensor(v) else v, np.float32)
        if '.' not in k:
            out.setdefault(k, []).append(arr)
            continue
        layer, idx = k.rsplit('.', 1)
        slot = {'weight': 0, '0': 0, 'bias': 1, '1': 1}.get(idx)
        if slot is None:
            continue
        blobs = out.setdefault(layer, [None, None])
        while len(blobs) < 2:
            blobs.append(None)
        blobs[slot] = arr
    return out


def _is_torchvision_vgg16(d: Dict[str, object]) -> bool:
    return 'features.0.weight' in d and 'classifier.0.weight' in d


def _target_params(model) -> Dict[str, torch.Tensor]:
    """Caffe layer name -> our parameter prefix, for the feature and fc layers."""
    out = {}
    for name, _ in model.features.named_parameters():
        out[name.split('.')[0]] = 'features.' + name.split('.')[0]
    for name, _ in model.head.named_parameters():
        out[name.split('.')[0]] = 'head.' + name.split('.')[0]
    return out


def load_pretrained(model, path: str) -> Dict[str, object]:
    """Load ImageNet (or snapshot) weights into ``model`` and set its input mode. Returns
    {'input_mode', 'loaded': [layer names], 'source'}."""
    if not osp.isfile(path):
        raise WeightsError('weights file not found: {} (data/scripts/fetch_imagenet_models.sh downloads the '
                           'ImageNet models)'.format(path))
    ext = osp.splitext(path)[1].lower()
    if ext == '.caffemodel':
        layers, mode, source = read_caffemodel(path), 'caffe', 'caffemodel'
    elif ext == '.npz':
        with np.load(path) as z:
            layers, mode, source = _caffe_layers_from_dict({k: z[k] for k in z.files}), 'caffe', 'npz'
    else:
        try:
            d = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as e:  # noqa: BLE001 - re-raised with the file named
            raise WeightsError('{}: cannot be read as a torch state dict ({})'.format(path, e)) from None
        if isinstance(d, dict) and 'format' in d and 'model' in d:
            state = dict(d['model'])
            ours = model.state_dict()
            keep = {k: v for k, v in state.items() if k in ours and ours[k].shape == v.shape}
            model.load_state_dict(keep, strict=False)
            return {'input_mode': model.get_input_mode(), 'loaded': sorted(keep), 'source': 'snapshot'}
        if isinstance(d, dict) and 'state_dict' in d:
            d = d['state_dict']
        if not isinstance(d, dict):
            raise WeightsError('{}: expected a state dict'.format(path))
        if _is_torchvision_vgg16(d):
            if model.net_name != 'VGG16':
                raise WeightsError('{}: torchvision VGG16 weights cannot initialise {}'.format(path, model.net_name))
            layers = {}
            for i, name in zip(_TV_VGG16_CONVS, _VGG16_NAMES):
                layers[name] = [d['features.{}.weight'.format(i)].numpy(), d['features.{}.bias'.format(i)].numpy()]
            layers['fc6'] = [d['classifier.0.weight'].numpy(), d['classifier.0.bias'].numpy()]
            layers['fc7'] = [d['classifier.3.weight'].numpy(), d['classifier.3.bias'].numpy()]
            mode, source = 'torchvision', 'torchvision'
        else:
            layers, mode, source = _caffe_layers_from_dict(d), 'caffe', 'caffe-named'
    targets = _target_params(model)
    state = model.state_dict()
    new = {}
    loaded = []
    for layer, blobs in layers.items():
        if layer not in targets:
            continue
        prefix = targets[layer]
        for suffix, blob in zip(('weight', 'bias'), blobs):
            if blob is None:
                continue
            key = '{}.{}'.format(prefix, suffix)
            want = tuple(state[key].shape)
            arr = np.asarray(blob, np.float32)
            if arr.size == int(np.prod(want)) and arr.shape != want and suffix == 'bias':
                arr = arr.reshape(want)
            if suffix == 'weight' and arr.ndim != len(want) and arr.size == int(np.prod(want)):
                arr = arr.reshape(want)  # Caffe InnerProduct blobs may come as (1, 1, out, in)
            if tuple(arr.shape) != want:
                raise WeightsError('{}: layer {} has {} of shape {}, {} expects {}'.format(
                    path, layer, suffix, tuple(arr.shape), model.net_name, want))
            new[key] = torch.from_numpy(arr.copy())
        loaded.append(layer)
    if not loaded:
        raise WeightsError('{}: none of its layers ({}) matches {} (layers: {})'.format(
            path, ', '.join(sorted(layers)[:8]), model.net_name, ', '.join(sorted(targets))))
    model.load_state_dict(new, strict=False)
    model.set_input_mode(mode)
    return {'input_mode': mode, 'loaded': sorted(loaded), 'source': source}


# ----------------------------------------------------------------------------- the original's trained detectors
# Caffe layer name -> our parameter prefix, for the layers of a Faster R-CNN detector beyond backbone and fc6/fc7.
_DETECTOR_LAYERS = {'rpn_conv/3x3': 'rpn_conv', 'rpn_cls_score': 'rpn_cls_score', 'rpn_bbox_pred': 'rpn_bbox_pred',
                    'cls_score': 'cls_score', 'bbox_pred': 'bbox_pred'}


def caffe_detector_spec(layers: Dict[str, List[np.ndarray]], path: str) -> Tuple[str, int, int]:
    """(network name, number of classes, anchors per position) of a trained Faster R-CNN caffemodel, such as the
    original's VGG16_faster_rcnn_final.caffemodel, from its layers' names and shapes."""
    missing = [name for name in _DETECTOR_LAYERS if name not in layers]
    if missing:
        raise WeightsError('{}: not a Faster R-CNN detector: it has no {} layer(s) (an ImageNet model is --weights '
                           'for training, not a network to test)'.format(path, ', '.join(missing)))
    if 'conv1_1' in layers:
        net = 'VGG16'
    elif 'conv1' in layers and 'fc7' in layers:
        net = 'VGG_CNN_M_1024' if layers['fc7'][0].size // 4096 == 1024 else 'ZF'
    else:
        raise WeightsError('{}: cannot tell its network (ZF, VGG_CNN_M_1024 or VGG16) from its layers: {}'.format(
            path, ', '.join(sorted(layers))))
    num_classes = int(np.asarray(layers['cls_score'][-1]).size)
    anchors = int(np.asarray(layers['rpn_cls_score'][-1]).size) // 2
    return net, num_classes, anchors


def load_caffe_detector(model, layers: Dict[str, List[np.ndarray]], path: str) -> None:
    """Every layer of a trained Faster R-CNN caffemodel into ``model`` (built for caffe_detector_spec's network):
    backbone, rpn_conv/3x3, rpn_cls_score, rpn_bbox_pred, fc6, fc7, cls_score, bbox_pred. A caffemodel layer with
    no place in the model, or a model layer the file lacks, is an error naming them: never a silently random
    layer. Sets the Caffe input convention (BGR minus PIXEL_MEANS). The original's snapshots hold bbox_pred with
    the target normalisation folded in, as ours do, so the deltas need no un-normalising."""
    targets = dict(_target_params(model))
    targets.update(_DETECTOR_LAYERS)
    unmapped = sorted(name for name in layers if name not in targets)
    if unmapped:
        raise WeightsError('{}: layers with no place in the {} detector: {}'.format(
            path, model.net_name, ', '.join(unmapped)))
    state = model.state_dict()
    new = {}
    for layer, prefix in targets.items():
        blobs = layers.get(layer)
        if blobs is None:
            continue
        for suffix, blob in zip(('weight', 'bias'), blobs):
            key = '{}.{}'.format(prefix, suffix)
            want = tuple(state[key].shape)
            arr = np.asarray(blob, np.float32)
            if arr.shape != want and arr.size == int(np.prod(want)):
                arr = arr.reshape(want)  # Caffe InnerProduct blobs may come as (1, 1, out, in), biases as (1, 1, 1, n)
            if arr.shape != want:
                raise WeightsError('{}: layer {} has {} of shape {}, the {} detector expects {}'.format(
                    path, layer, suffix, tuple(arr.shape), model.net_name, want))
            new[key] = torch.from_numpy(arr.copy())
    absent = sorted(k for k in state if k not in new and k != 'input_mode')
    if absent:
        raise WeightsError('{}: the {} detector has weights the file does not: {}'.format(
            path, model.net_name, ', '.join(absent)))
    model.load_state_dict(new, strict=False)
    model.set_input_mode('caffe')
