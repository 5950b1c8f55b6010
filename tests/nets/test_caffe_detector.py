"""The original's trained detectors (VGG16/ZF_faster_rcnn_final.caffemodel) in test_net and demo: a caffemodel the
test writes with every layer of a ZF detector loads with the same weights and gives the same detections as the
model it was written from; layers that do not map, layers missing, and a wrong class count are errors."""
import numpy as np
import pytest
import torch

from caffe_proto import caffemodel
from fast_rcnn.config import default_cfg
from fast_rcnn.test import im_detect, load_detector
from nets.faster_rcnn import FasterRCNN
from nets.weights import WeightsError, caffe_detector_spec

pytestmark = pytest.mark.slow  # writes and parses a ~200 MB caffemodel
# our parameter prefix -> the original's layer name (its prototxts' names, written out)
CAFFE_NAMES = {'rpn_conv': 'rpn_conv/3x3', 'head.fc6': 'fc6', 'head.fc7': 'fc7'}


def _caffe_layers(model):
    layers = {}
    for key, value in model.state_dict().items():
        if key == 'input_mode':
            continue
        prefix, suffix = key.rsplit('.', 1)
        name = CAFFE_NAMES.get(prefix, prefix.replace('features.', ''))
        layers.setdefault(name, [None, None])[0 if suffix == 'weight' else 1] = value.numpy()
    return list(layers.items())


@pytest.fixture(scope='module')
def zf_detector(tmp_path_factory):
    torch.manual_seed(0)
    c = default_cfg()
    model = FasterRCNN('ZF', 21, c)
    with torch.no_grad():  # not the initial fillers: the RPN and heads must matter for the outputs
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    model.set_input_mode('caffe')
    model.eval()
    layers = _caffe_layers(model)
    path = tmp_path_factory.mktemp('caffe') / 'ZF_faster_rcnn_final.caffemodel'
    path.write_bytes(caffemodel('ZF', layers))
    return model, layers, path


def test_every_layer_loads_and_detections_match(zf_detector):
    model, layers, path = zf_detector
    assert {n for n, _ in layers} >= {'conv1', 'conv5', 'rpn_conv/3x3', 'rpn_cls_score', 'rpn_bbox_pred', 'fc6',
                                      'fc7', 'cls_score', 'bbox_pred'}
    net, c, classes = load_detector(str(path), set_cfgs=['TEST.SCALES', '[200]', 'TEST.MAX_SIZE', '333'])
    assert net.net_name == 'ZF' and net.name == 'ZF_faster_rcnn_final' and len(classes) == 21
    assert classes[15] == 'person' and net.get_input_mode() == 'caffe'
    want, got = model.state_dict(), net.state_dict()
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want)

    model.cfg = c  # the same settings for the model the file was written from
    im = np.random.RandomState(1).randint(0, 255, (150, 250, 3)).astype(np.uint8)
    s1, b1 = im_detect(model, im, cfg=c)
    s2, b2 = im_detect(net, im, cfg=c)
    assert s1.shape[1] == 21 and len(s1) > 0
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(b1, b2)


def test_layers_that_do_not_map_are_an_error(zf_detector, tmp_path):
    _, layers, _ = zf_detector
    path = tmp_path / 'extra.caffemodel'
    extra = [('conv_extra', [np.zeros((2, 2, 1, 1), np.float32), np.zeros(2, np.float32)])]
    path.write_bytes(caffemodel('ZF', layers + extra))
    with pytest.raises(WeightsError, match='no place in the ZF detector: conv_extra'):
        load_detector(str(path))
    path.write_bytes(caffemodel('ZF', [item for item in layers if item[0] != 'conv3']))
    with pytest.raises(WeightsError, match='weights the file does not: features.conv3.bias, features.conv3.weight'):
        load_detector(str(path))
    path.write_bytes(caffemodel('ZF', [item for item in layers if item[0] != 'rpn_bbox_pred']))
    with pytest.raises(WeightsError, match='not a Faster R-CNN detector: it has no rpn_bbox_pred'):
        load_detector(str(path))


def test_class_count_must_match_the_dataset(zf_detector):
    _, _, path = zf_detector
    with pytest.raises(ValueError, match='cls_score has 21 classes, the dataset 3'):
        load_detector(str(path), classes=['__background__', 'a', 'b'])


def test_network_and_anchors_from_the_layers():
    z = np.zeros
    base = {'rpn_conv/3x3': [z(1)], 'rpn_cls_score': [z((24, 1, 1, 1)), z(24)], 'rpn_bbox_pred': [z(1)],
            'cls_score': [z((81, 1)), z(81)], 'bbox_pred': [z(1)]}
    assert caffe_detector_spec(dict(base, conv1_1=[z(1)]), 'x') == ('VGG16', 81, 12)
    assert caffe_detector_spec(dict(base, conv1=[z(1)], fc7=[z((1024, 4096))]), 'x')[0] == 'VGG_CNN_M_1024'
    assert caffe_detector_spec(dict(base, conv1=[z(1)], fc7=[z((4096, 4096))]), 'x')[0] == 'ZF'
