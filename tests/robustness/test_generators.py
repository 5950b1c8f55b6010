"""The dataset generators (data/scripts/make_shapes.py, make_glyphs.py) never delete or overwrite what a user owns:
a folder that is not the generator's own is refused (one line naming it and what is in it, exit status 2) and left
as it was; the generator's own finished dataset is reused, its own dataset of other parameters replaced."""
import importlib.util
import json
import os
import os.path as osp
import sys

import pytest

from datasets import shapes

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
SMALL = ['--num-trainval', '2', '--num-test', '1', '--workers', '1']


def _script(name):
    spec = importlib.util.spec_from_file_location('_script_' + name, osp.join(ROOT, 'data', 'scripts', name + '.py'))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod          # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def make_shapes():
    return _script('make_shapes')


@pytest.fixture(scope='module')
def make_glyphs():
    return _script('make_glyphs')


def _snapshot(folder):
    """{relative path: bytes (files) or None (folders)} of everything under folder."""
    out = {}
    for dirpath, dirs, files in os.walk(folder):
        for d in dirs:
            out[osp.relpath(osp.join(dirpath, d), folder)] = None
        for f in files:
            with open(osp.join(dirpath, f), 'rb') as fh:
                out[osp.relpath(osp.join(dirpath, f), folder)] = fh.read()
    return out


def _users_folder(path):
    os.makedirs(osp.join(path, 'photos'))
    with open(osp.join(path, 'notes.md'), 'w') as f:
        f.write('my notes\n')
    with open(osp.join(path, 'photos', 'cat.jpg'), 'wb') as f:
        f.write(b'\xff\xd8 a photo')


def _one_error_line(err, prog):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(prog + ': '), err
    return lines[0]


def test_make_shapes_refuses_a_users_folder(make_shapes, tmp_path, capsys):
    out = str(tmp_path / 'mine')
    _users_folder(out)
    before = _snapshot(str(tmp_path))
    rc = make_shapes.main(['--out', out] + SMALL)
    assert rc == 2
    line = _one_error_line(capsys.readouterr().err, 'make_shapes.py')
    assert out in line and 'notes.md' in line and 'photos/' in line
    assert _snapshot(str(tmp_path)) == before        # nothing touched, no lock or temp file beside it either


def test_make_shapes_force_does_not_override_the_refusal(make_shapes, tmp_path, capsys):
    out = str(tmp_path / 'mine')
    _users_folder(out)
    before = _snapshot(str(tmp_path))
    assert make_shapes.main(['--out', out, '--force'] + SMALL) == 2
    assert _snapshot(str(tmp_path)) == before


def test_make_shapes_refuses_a_file(make_shapes, tmp_path, capsys):
    out = tmp_path / 'shapes'
    out.write_bytes(b'not a folder')
    assert make_shapes.main(['--out', str(out)] + SMALL) == 2
    line = _one_error_line(capsys.readouterr().err, 'make_shapes.py')
    assert str(out) in line and 'not a folder' in line
    assert out.read_bytes() == b'not a folder'


def test_make_shapes_into_an_empty_folder(make_shapes, tmp_path, capsys):
    out = tmp_path / 'empty'
    out.mkdir()
    assert make_shapes.main(['--out', str(out)] + SMALL) == 0
    assert sorted(os.listdir(str(out))) == ['Annotations', 'ImageSets', 'JPEGImages', 'classes.txt', 'meta.json']
    assert sorted(os.listdir(str(out / 'JPEGImages'))) == ['000001.jpg', '000002.jpg', '000003.jpg']


def test_make_shapes_reuses_its_finished_dataset(make_shapes, tmp_path, capsys):
    out = str(tmp_path / 'shapes')
    assert make_shapes.main(['--out', out, '--seed', '5'] + SMALL) == 0
    st = {p: os.stat(osp.join(out, p)).st_mtime_ns for p in ('meta.json', 'JPEGImages/000001.jpg')}
    capsys.readouterr()
    assert make_shapes.main(['--out', out, '--seed', '5'] + SMALL) == 0
    assert 'Generating' not in capsys.readouterr().out
    assert {p: os.stat(osp.join(out, p)).st_mtime_ns for p in st} == st


def test_make_shapes_replaces_its_own_dataset_of_other_parameters(make_shapes, tmp_path, capsys):
    out = str(tmp_path / 'shapes')
    assert make_shapes.main(['--out', out, '--seed', '5'] + SMALL) == 0
    # the same folder asked with another seed: before, it was kept silently (only the version was compared)
    assert make_shapes.main(['--out', out, '--seed', '6'] + SMALL) == 0
    with open(osp.join(out, 'meta.json')) as f:
        assert json.load(f)['seed'] == 6
    assert 'Replacing the shapes dataset' in capsys.readouterr().out
    assert sorted(os.listdir(str(tmp_path))) == ['.shapes.lock', 'shapes']   # the old one gone, no temp left


def test_make_shapes_refuses_its_dataset_once_a_user_added_a_file(make_shapes, tmp_path, capsys):
    out = str(tmp_path / 'shapes')
    assert make_shapes.main(['--out', out, '--seed', '5'] + SMALL) == 0
    with open(osp.join(out, 'JPEGImages', 'holiday.jpg'), 'wb') as f:
        f.write(b'a photo of mine')
    os.mkdir(osp.join(out, 'drafts'))
    capsys.readouterr()
    before = _snapshot(str(tmp_path))
    for extra in ([], ['--force']):
        assert make_shapes.main(['--out', out, '--seed', '6'] + SMALL + extra) == 2
        line = _one_error_line(capsys.readouterr().err, 'make_shapes.py')
        assert osp.join('JPEGImages', 'holiday.jpg') in line and 'drafts/' in line
        assert _snapshot(str(tmp_path)) == before
    # asked with its own parameters it is still reused as it is (nothing written)
    assert make_shapes.main(['--out', out, '--seed', '5'] + SMALL) == 0
    assert _snapshot(str(tmp_path)) == before


def test_a_meta_json_alone_does_not_make_a_folder_the_generators(tmp_path):
    out = tmp_path / 'shapes'
    out.mkdir()
    (out / 'meta.json').write_text('{"generator_version": 1, "seed": 0}')
    (out / 'thesis.tex').write_text('mine')
    assert shapes.foreign_entries(str(out)) == ['thesis.tex']
    with pytest.raises(shapes.FolderNotOursError, match='thesis.tex'):
        shapes.generate_atomic(str(out), seed=1, num_trainval=2, num_test=1, verbose=False)
    assert sorted(os.listdir(str(out))) == ['meta.json', 'thesis.tex']


def test_generate_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / 'notes.md').write_text('mine')
    with pytest.raises(shapes.FolderNotOursError, match='notes.md'):
        shapes.generate(str(tmp_path), seed=0, num_trainval=2, num_test=1)
    assert os.listdir(str(tmp_path)) == ['notes.md']


def test_make_shapes_into_a_non_utf8_folder_name(make_shapes, tmp_path, capsys):
    out = osp.join(str(tmp_path), os.fsdecode(b'caf\xe9'))           # cv2.imwrite crashed on such names
    assert make_shapes.main(['--out', out] + SMALL) == 0
    assert 'caf\\xe9' in capsys.readouterr().out
    assert sorted(os.listdir(os.fsencode(out) + b'/JPEGImages')) == [b'000001.jpg', b'000002.jpg', b'000003.jpg']


def test_make_glyphs_refuses_a_users_folder(make_glyphs, tmp_path, capsys):
    out = str(tmp_path / 'mine')
    _users_folder(out)
    before = _snapshot(str(tmp_path))
    assert make_glyphs.main([out, '--num-trainval', '1', '--num-test', '1', '--workers', '1']) == 2
    line = _one_error_line(capsys.readouterr().err, 'make_glyphs.py')
    assert out in line and 'notes.md' in line and 'photos/' in line
    assert _snapshot(str(tmp_path)) == before


def test_make_glyphs_into_an_empty_folder(make_glyphs, tmp_path, capsys):
    out = tmp_path / 'glyphs'
    out.mkdir()
    assert make_glyphs.main([str(out), '--num-trainval', '1', '--num-test', '1', '--workers', '1']) == 0
    assert sorted(os.listdir(str(out))) == ['Annotations', 'ImageSets', 'JPEGImages']
    assert os.listdir(str(tmp_path)) == ['glyphs']                   # no temp folder left beside it
