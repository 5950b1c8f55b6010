"""Property-based tests (hypothesis) of the config parser (--set pairs, YAML files) and the snapshot loader on
generated bad input: each ends in a clear error of the project's own (ConfigError / ValueError naming the file) or
in a value that passes every check; never an exception from inside a library, never a silent bad value."""
import os.path as osp

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from fast_rcnn.config import ConfigError, cfg, cfg_copy, cfg_from_file, cfg_from_list, cfg_to_dict, check_value
from fast_rcnn.train import SNAPSHOT_FORMAT, atomic_torch_save, load_snapshot, tensors_checksum

SETTINGS = dict(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _keys(d, prefix=''):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _keys(v, prefix + k + '.')
        else:
            yield prefix + k


KEYS = sorted(_keys(cfg_to_dict(cfg)))
numbers = st.one_of(st.integers(-10 ** 12, 10 ** 12), st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False))
value_texts = st.one_of(
    numbers.map(repr), st.sampled_from(['nan', 'inf', '-inf', '1e999', '-1e999', 'True', 'None', '[]', '()', '',
                                        '[[[1, 2, 3]]]', "'x'", '{1: 2}', '(600,', 'a/b']),
    st.lists(numbers, max_size=4).map(repr), st.text(max_size=12))


def _all_values_pass(c, prefix=''):
    for k, v in c.items():
        if isinstance(v, dict):
            _all_values_pass(v, prefix + k + '.')
        else:
            check_value(prefix + k, v)  # raises on a NaN, an Inf or an out-of-range number


@settings(**SETTINGS)
@given(st.lists(st.tuples(st.one_of(st.sampled_from(KEYS), st.text(max_size=15)), value_texts), min_size=1,
                max_size=4))
def test_set_pairs_end_in_a_config_error_or_checked_values(pairs):
    c = cfg_copy(cfg)
    before = cfg_to_dict(c)
    flat = [x for kv in pairs for x in kv]
    try:
        cfg_from_list(flat, c)
    except ConfigError as e:
        assert str(e).startswith('--set')
        assert cfg_to_dict(c) == before  # all or nothing
        return
    _all_values_pass(c)


yaml_texts = st.one_of(
    st.text(max_size=60),
    st.builds(lambda k, v: '{}: {}\n'.format(k, v), st.sampled_from(['TRAIN', 'TEST', 'EXP_DIR', 'RNG_SEED', 'EPS',
                                                                     'PIXEL_MEANS', '1', 'null']), value_texts),
    st.builds(lambda k, v: 'TRAIN:\n  {}: {}\n'.format(k, v),
              st.sampled_from([k.split('.', 1)[1] for k in KEYS if k.startswith('TRAIN.')] + ['NOPE', '2']),
              value_texts))


@settings(**SETTINGS)
@given(yaml_texts)
def test_yaml_config_files_end_in_a_config_error_naming_the_file_or_checked_values(tmp_path, text):
    p = tmp_path / 'gen.yml'
    p.write_text(text)
    c = cfg_copy(cfg)
    try:
        cfg_from_file(str(p), c)
    except ConfigError as e:
        assert 'gen.yml' in str(e)
        return
    _all_values_pass(c)


@pytest.fixture(scope='module')
def snapshot_bytes(tmp_path_factory):
    """A small snapshot as SolverWrapper writes them (format, model, optimizer state, checksum)."""
    torch.manual_seed(0)
    snap = {'format': SNAPSHOT_FORMAT, 'net': 'TINY', 'classes': ['__background__', 'a'], 'num_classes': 2,
            'iter': 7, 'model': {'conv.weight': torch.randn(8, 3, 3, 3), 'conv.bias': torch.randn(8)},
            'optimizer': {'type': 'SGD', 'names': ['conv.weight'], 'history': [torch.randn(8, 3, 3, 3)]},
            'cfg': {'EXP_DIR': 'x'}, 'rng': {'torch': torch.get_rng_state()}}
    snap['checksum'] = tensors_checksum(snap)
    path = str(tmp_path_factory.mktemp('snap') / 'good.pth')
    atomic_torch_save(snap, path)
    with open(path, 'rb') as f:
        return f.read(), tensors_checksum(load_snapshot(path))


mutations = st.one_of(
    st.tuples(st.just('truncate'), st.floats(0, 1, allow_subnormal=False)),
    st.tuples(st.just('flip'), st.lists(st.tuples(st.floats(0, 1, allow_subnormal=False), st.integers(1, 255)), min_size=1, max_size=4)),
    st.tuples(st.just('insert'), st.tuples(st.floats(0, 1, allow_subnormal=False), st.binary(min_size=1, max_size=16))),
    st.tuples(st.just('random'), st.binary(max_size=2048)))


def _mutate(raw, m):
    kind, arg = m
    if kind == 'truncate':
        return raw[:int(arg * (len(raw) - 1))]
    if kind == 'flip':
        b = bytearray(raw)
        for where, mask in arg:
            b[int(where * (len(b) - 1))] ^= mask
        return bytes(b)
    if kind == 'insert':
        where, blob = arg
        i = int(where * len(raw))
        return raw[:i] + blob + raw[i:]
    return arg


@pytest.mark.filterwarnings('ignore:Detected pickle protocol')  # torch's note on a damaged header byte
@settings(**SETTINGS)
@given(mutations)
def test_damaged_snapshots_end_in_an_error_naming_the_file_or_load_intact(tmp_path, snapshot_bytes, m):
    raw, good = snapshot_bytes
    p = tmp_path / 'damaged.pth'
    p.write_bytes(_mutate(raw, m))
    try:
        snap = load_snapshot(str(p))
    except ValueError as e:
        assert osp.basename(str(p)) in str(e)
        return
    assert tensors_checksum(snap) == good  # only bytes that nothing loads from were changed
