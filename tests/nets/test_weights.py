"""ImageNet initialisation: torchvision VGG16 names and Caffe .caffemodel / Caffe-named files map onto our layers
and choose the input convention. The test writes its own weights files."""
import numpy as np
import pytest
import torch

from caffe_proto import field as _field, layer as _layer
from nets.faster_rcnn import FasterRCNN
from nets.weights import WeightsError, load_pretrained, read_caffemodel


def _cfg():
    from fast_rcnn.config import cfg, cfg_copy
    return cfg_copy(cfg)


def test_read_caffemodel_and_load_zf(tmp_path):
    rng = np.random.RandomState(0)
    w1 = rng.randn(96, 3, 7, 7).astype(np.float32)
    b1 = rng.randn(96).astype(np.float32)
    fc7 = rng.randn(4096, 4096).astype(np.float32) * 0.01
    data = _field(1, 2, b'ZF') + _layer('conv1', [w1, b1]) + _layer('fc7', [fc7, np.zeros(4096, np.float32)]) \
        + _layer('data', [])
    path = tmp_path / 'ZF.v2.caffemodel'
    path.write_bytes(data)
    layers = read_caffemodel(str(path))
    assert sorted(layers) == ['conv1', 'fc7']
    np.testing.assert_array_equal(layers['conv1'][0], w1)
    m = FasterRCNN('ZF', 3, _cfg())
    info = load_pretrained(m, str(path))
    assert info['input_mode'] == 'caffe' and info['loaded'] == ['conv1', 'fc7']
    np.testing.assert_array_equal(m.features.conv1.weight.detach().numpy(), w1)
    np.testing.assert_array_equal(m.features.conv1.bias.detach().numpy(), b1)
    np.testing.assert_array_equal(m.head.fc7.weight.detach().numpy(), fc7)


def test_torchvision_vgg16_state_dict_maps_by_position(tmp_path):
    # only the tensors the mapping reads, with torchvision's names and shapes
    widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    idx = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    sd = {}
    cin = 3
    for k, (i, w) in enumerate(zip(idx, widths)):
        sd['features.{}.weight'.format(i)] = torch.full((w, cin, 3, 3), float(k))
        sd['features.{}.bias'.format(i)] = torch.full((w,), float(k))
        cin = w
    sd['classifier.0.weight'] = torch.full((4096, 25088), 0.5)
    sd['classifier.0.bias'] = torch.zeros(4096)
    sd['classifier.3.weight'] = torch.full((4096, 4096), 0.25)
    sd['classifier.3.bias'] = torch.zeros(4096)
    sd['classifier.6.weight'] = torch.zeros(1000, 4096)
    path = tmp_path / 'vgg16-397923af.pth'
    torch.save(sd, str(path))
    m = FasterRCNN('VGG16', 5, _cfg()).requires_grad_(False)
    info = load_pretrained(m, str(path))
    assert info['input_mode'] == 'torchvision' and m.get_input_mode() == 'torchvision'
    assert float(m.features.conv1_1.weight[0, 0, 0, 0]) == 0.0
    assert float(m.features.conv3_3.weight[0, 0, 0, 0]) == 6.0
    assert float(m.features.conv5_3.bias[0]) == 12.0
    assert float(m.head.fc6.weight[0, 0]) == 0.5 and float(m.head.fc7.weight[0, 0]) == 0.25
    assert m.cls_score.weight.shape == (5, 4096)   # the heads keep their own initialisation
    with pytest.raises(WeightsError, match='cannot initialise ZF'):
        load_pretrained(FasterRCNN('ZF', 3, _cfg()), str(path))


def test_shape_mismatch_and_missing_file_are_clear_errors(tmp_path):
    p = tmp_path / 'bad.pth'
    torch.save({'conv1.weight': torch.zeros(10, 3, 7, 7)}, str(p))
    with pytest.raises(WeightsError, match='conv1'):
        load_pretrained(FasterRCNN('ZF', 3, _cfg()), str(p))
    with pytest.raises(WeightsError, match='not found'):
        load_pretrained(FasterRCNN('ZF', 3, _cfg()), str(tmp_path / 'nope.caffemodel'))
