import json
import os.path as osp

import numpy as np
import pytest

from fast_rcnn import config
from fast_rcnn.config import ConfigError, cfg, cfg_copy, cfg_from_dict, cfg_from_file, cfg_from_list, cfg_to_dict

PATH_KEYS = {'ROOT_DIR', 'DATA_DIR', 'MODELS_DIR'}


def _expected_defaults(oracle_dir):
    with open(osp.join(oracle_dir, 'config_defaults.json')) as f:
        return json.load(f)


def _compare(ours, theirs, prefix=''):
    for key, value in theirs.items():
        name = prefix + key
        assert key in ours, 'missing key ' + name
        if key in PATH_KEYS and not prefix:
            continue
        if isinstance(value, dict):
            _compare(ours[key], value, name + '.')
        elif isinstance(value, list):
            assert np.allclose(np.asarray(ours[key], dtype=float), np.asarray(value, dtype=float)), name
            assert isinstance(ours[key], (tuple, np.ndarray)), name
        else:
            assert ours[key] == value and type(ours[key]) is type(value), name


def test_every_original_key_has_its_default(oracle_dir):
    _compare(cfg, _expected_defaults(oracle_dir)['defaults'])


def test_paths_are_this_checkout():
    root = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
    assert cfg.ROOT_DIR == root
    assert cfg.DATA_DIR == osp.join(root, 'data')
    assert cfg.MODELS_DIR == osp.join(root, 'models', 'pascal_voc')


@pytest.mark.parametrize('name', ['faster_rcnn_end2end', 'faster_rcnn_alt_opt'])
def test_experiment_cfgs_match_the_original(oracle_dir, name):
    c = cfg_copy()
    cfg_from_file(osp.join(cfg.ROOT_DIR, 'experiments', 'cfgs', name + '.yml'), c)
    expected = _expected_defaults(oracle_dir)['experiments_cfgs'][name]
    _compare(c, expected)
    # and nothing else changed
    d0, d1 = cfg_to_dict(), cfg_to_dict(c)
    changed = {('TRAIN.' + k) for k in d0['TRAIN'] if d0['TRAIN'][k] != d1['TRAIN'][k]}
    changed |= {('TEST.' + k) for k in d0['TEST'] if d0['TEST'][k] != d1['TEST'][k]}
    changed |= {k for k in d0 if k not in ('TRAIN', 'TEST') and d0[k] != d1[k]}
    listed = {('TRAIN.' + k) for k in expected.get('TRAIN', {})} | {('TEST.' + k) for k in expected.get('TEST', {})}
    listed |= {k for k in expected if k not in ('TRAIN', 'TEST')}
    assert changed <= listed


def test_set_accepts_list_for_tuple_and_keeps_tuple():
    c = cfg_copy()
    cfg_from_list(['TRAIN.SCALES', '[400, 500]', 'TEST.SCALES', '(300,)'], c)
    assert c.TRAIN.SCALES == (400, 500)
    assert c.TEST.SCALES == (300,)
    assert cfg.TRAIN.SCALES == (600,)  # the global is untouched


def test_set_parses_strings_ints_floats_bools():
    c = cfg_copy()
    cfg_from_list(['EXP_DIR', 'my_exp', 'RNG_SEED', '7', 'TRAIN.FG_THRESH', '1', 'TRAIN.USE_FLIPPED', 'False'], c)
    assert c.EXP_DIR == 'my_exp'
    assert c.RNG_SEED == 7
    assert c.TRAIN.FG_THRESH == 1.0 and isinstance(c.TRAIN.FG_THRESH, float)
    assert c.TRAIN.USE_FLIPPED is False


def test_unknown_key_is_named():
    c = cfg_copy()
    with pytest.raises(ConfigError, match='TRAIN.SCALEZ'):
        cfg_from_list(['TRAIN.SCALEZ', '(600,)'], c)
    with pytest.raises(ConfigError, match='NOPE.X'):
        cfg_from_list(['NOPE.X', '1'], c)
    with pytest.raises(ConfigError, match='TRAIN.BOGUS'):
        cfg_from_dict({'TRAIN': {'BOGUS': 1}}, c)


def test_wrong_type_names_key_and_expected_type():
    c = cfg_copy()
    with pytest.raises(ConfigError, match=r'TRAIN.IMS_PER_BATCH.*int.*str'):
        cfg_from_list(['TRAIN.IMS_PER_BATCH', 'two'], c)
    with pytest.raises(ConfigError, match=r'TRAIN.HAS_RPN.*bool'):
        cfg_from_list(['TRAIN.HAS_RPN', '1'], c)
    with pytest.raises(ConfigError, match=r'TRAIN.SCALES\[1\].*int'):
        cfg_from_list(['TRAIN.SCALES', "[600, 'x']"], c)
    with pytest.raises(ConfigError, match='PIXEL_MEANS'):
        cfg_from_list(['PIXEL_MEANS', '[1, 2]'], c)
    with pytest.raises(ConfigError, match='odd number'):
        cfg_from_list(['EXP_DIR'], c)


def test_pixel_means_from_nested_list():
    c = cfg_copy()
    cfg_from_list(['PIXEL_MEANS', '[[[1, 2, 3]]]'], c)
    assert isinstance(c.PIXEL_MEANS, np.ndarray) and c.PIXEL_MEANS.shape == (1, 1, 3)
    np.testing.assert_array_equal(c.PIXEL_MEANS, [[[1., 2., 3.]]])


def test_cfg_from_file_merges_and_reports_file(tmp_path):
    good = tmp_path / 'good.yml'
    good.write_text('EXP_DIR: foo\nTRAIN:\n  SCALES: [500]\n  RPN_POST_NMS_TOP_N: 300\n')
    c = cfg_copy()
    cfg_from_file(str(good), c)
    assert c.EXP_DIR == 'foo' and c.TRAIN.SCALES == (500,) and c.TRAIN.RPN_POST_NMS_TOP_N == 300
    assert c.TRAIN.MAX_SIZE == 1000
    bad = tmp_path / 'bad.yml'
    bad.write_text('TRAIN:\n  MAX_SIZES: 3\n')
    with pytest.raises(ConfigError, match=r'bad.yml.*TRAIN.MAX_SIZES'):
        cfg_from_file(str(bad), c)


def test_round_trip_through_plain_dict():
    c = cfg_copy()
    cfg_from_list(['TRAIN.SCALES', '(400, 500)', 'EXP_DIR', 'x'], c)
    d = cfg_to_dict(c)
    assert d['TRAIN']['SCALES'] == [400, 500] and isinstance(d['PIXEL_MEANS'], list)
    c2 = cfg_copy()
    cfg_from_dict(d, c2)
    assert c2.TRAIN.SCALES == (400, 500) and c2.EXP_DIR == 'x'
    np.testing.assert_array_equal(c2.PIXEL_MEANS, cfg.PIXEL_MEANS)


def test_get_output_dir(tmp_path):
    c = cfg_copy()
    c.ROOT_DIR = str(tmp_path)
    c.EXP_DIR = 'exp'

    class Imdb:
        name = 'voc_2007_test'

    out = config.get_output_dir(Imdb(), cfg=c)
    assert out == osp.join(str(tmp_path), 'output', 'exp', 'voc_2007_test') and osp.isdir(out)
    out = config.get_output_dir(Imdb(), 'vgg16_iter_10', cfg=c)
    assert out.endswith(osp.join('voc_2007_test', 'vgg16_iter_10')) and osp.isdir(out)


@pytest.mark.parametrize('key', ['TEST.SVM'])
def test_keys_that_would_do_nothing_are_refused(key):
    c = cfg_copy(cfg)
    with pytest.raises(ConfigError, match=r'--set config key {}: only False is supported'.format(key)):
        cfg_from_list([key, 'True'], c)
    cfg_from_list([key, 'False'], c)  # the original's default loads
