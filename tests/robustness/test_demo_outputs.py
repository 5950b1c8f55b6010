"""tools/demo.py never writes over an input or over a file it did not draw, keeps the pictures of same-named
inputs apart, reports every failed read or write (one line naming the file) with a non-zero exit status, and
reads any file name. main() runs end to end with a small randomly initialised TINY detector."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest

import demo  # tools/ is on sys.path (tests/conftest.py)

CLASSES = ['__background__', 'box', 'plate']


@pytest.fixture(scope='module')
def tiny():
    import torch
    from fast_rcnn.test import build_cfg
    from nets.faster_rcnn import FasterRCNN
    c = build_cfg(None, [], ['TEST.SCALES', '[64]', 'TEST.MAX_SIZE', '96', 'TEST.RPN_PRE_NMS_TOP_N', '50',
                             'TEST.RPN_POST_NMS_TOP_N', '10', 'TEST.RPN_MIN_SIZE', '2', 'ANCHOR_SCALES', '[2, 4]',
                             'FEAT_STRIDE', '8'])
    torch.manual_seed(0)
    net = FasterRCNN('TINY', len(CLASSES), c).eval()
    return net, c


@pytest.fixture
def run_demo(tiny, monkeypatch, tmp_path, capsys):
    """main(argv) with the tiny detector in place of --net's snapshot; returns (status, stdout, stderr)."""
    import fast_rcnn.test
    net, c = tiny
    monkeypatch.setattr(fast_rcnn.test, 'load_detector', lambda path, files, sets, device: (net, c, CLASSES))
    snap = tmp_path / 'model.pth'
    snap.write_bytes(b'stands for a snapshot')

    def run(args):
        # nothing drawn (scores are <= 1) unless a test asks: a picture keeps its input's colours
        rc = demo.main(['--net', str(snap), '--conf-thresh', '1.01'] + [str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err
    return run


def _picture(path, bgr, ext=None):
    """A 40x50 picture of one colour, written with Python's open (any file name)."""
    im = np.zeros((40, 50, 3), np.uint8)
    im[:] = bgr
    ok, buf = cv2.imencode(ext or osp.splitext(os.fsdecode(path))[1], im)
    assert ok
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(buf.tobytes())


def _colour(path):
    """The picture's colour in its middle."""
    with open(path, 'rb') as f:
        im = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
    return tuple(int(v) for v in im[20, 25]) if im is not None else None


def _lines(err):
    lines = err.strip().splitlines()
    for ln in lines:
        assert ln.startswith('demo.py: '), err
    return lines


# --------------------------------------------------------------------------------------------- output paths
def test_output_names_keep_relative_paths_of_same_named_inputs():
    # a/img.jpg and b/img.jpg lie in /x/a and /x/b: their deepest common folder is /x
    assert demo.output_names(['/x/a/img.jpg', '/x/b/img.jpg']) == ['a/img.jpg', 'b/img.jpg']
    assert demo.output_names(['/x/a/img.jpg', '/x/a/deep/img.jpg']) == ['img.jpg', 'deep/img.jpg']
    # one folder: flat, the names as they are (what `demo.py --out OUT dir/` always wrote)
    assert demo.output_names(['/x/d/1.jpg', '/x/d/2.png']) == ['1.jpg', '2.png']
    assert demo.output_path_for(['/x/a/img.jpg', '/x/b/img.jpg'], '/out') == ['/out/a/img.jpg', '/out/b/img.jpg']


def test_output_names_never_collide_in_a_folder():
    # x.bmp was written as x.png before, over x.png's picture
    assert demo.output_names(['/d/x.bmp', '/d/x.png']) == ['x.bmp.png', 'x.png']
    assert demo.output_names(['/d/a.JPEG', '/d/b.tif']) == ['a.JPEG', 'b.tif.png']
    # names equal but for case: the later one gets -2, skipping a name another input has
    assert demo.output_names(['/d/A.jpg', '/d/a.jpg', '/d/a-2.jpg']) == ['A.jpg', 'a-3.jpg', 'a-2.jpg']


def test_collect_images_takes_each_file_once(tmp_path):
    _picture(str(tmp_path / 'd' / 'x.png'), (1, 2, 3))
    d = str(tmp_path / 'd')
    assert demo.collect_images([d, osp.join(d, 'x.png'), d + '/']) == [osp.join(d, 'x.png')]


def test_a_missing_input_is_a_command_line_error(run_demo, tmp_path):
    rc, out, err = run_demo([tmp_path / 'nope.jpg'])
    assert rc == 2
    assert _lines(err) == ['demo.py: no such image or folder: {}'.format(tmp_path / 'nope.jpg')]


# --------------------------------------------------------------------------------------------- end to end
def test_end_to_end_one_marked_picture_per_input(run_demo, tmp_path):
    _picture(str(tmp_path / 'in' / 'p.jpg'), (200, 10, 10))
    _picture(str(tmp_path / 'in' / 'q.bmp'), (10, 200, 10))
    rc, out, err = run_demo(['--conf-thresh', '0.0', '--out', tmp_path / 'out', tmp_path / 'in'])
    assert rc == 0, err
    assert err == ''
    assert sorted(os.listdir(str(tmp_path / 'out'))) == ['index.html', 'p.jpg', 'q.bmp.png']
    assert 'Demo for {}'.format(tmp_path / 'in' / 'p.jpg') in out
    assert out.strip().splitlines()[-1] == 'Pictures saved in {}'.format(tmp_path / 'out')
    with open(str(tmp_path / 'out' / 'q.bmp.png'), 'rb') as f:   # the detections drawn: not uniform any more
        drawn = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape == (40, 50, 3) and (drawn != (10, 200, 10)).any()
    for name in ('p.jpg', 'q.bmp.png'):
        assert demo.is_demo_picture(str(tmp_path / 'out' / name))
    # a rerun replaces demo.py's own pictures
    rc, out, err = run_demo(['--out', tmp_path / 'out', tmp_path / 'in'])
    assert rc == 0, err


def test_never_writes_over_an_input(run_demo, tmp_path):
    d = tmp_path / 'pics'
    _picture(str(d / 'x.jpg'), (0, 0, 250))
    before = (d / 'x.jpg').read_bytes()
    for args in (['--out', d, d / 'x.jpg'], ['--out', d, d]):
        rc, out, err = run_demo(args)
        assert rc == 2
        (line,) = _lines(err)
        assert 'would overwrite the input {}'.format(d / 'x.jpg') in line
        assert (d / 'x.jpg').read_bytes() == before
        assert os.listdir(str(d)) == ['x.jpg']
    # through a link to the folder: the same file
    os.symlink(str(d), str(tmp_path / 'link'))
    rc, out, err = run_demo(['--out', tmp_path / 'link', d / 'x.jpg'])
    assert rc == 2 and 'would overwrite the input' in err
    assert (d / 'x.jpg').read_bytes() == before


def test_same_named_inputs_keep_both_pictures(run_demo, tmp_path):
    _picture(str(tmp_path / 'a' / 'img.png'), (250, 0, 0))
    _picture(str(tmp_path / 'b' / 'img.png'), (0, 250, 0))
    rc, out, err = run_demo(['--out', tmp_path / 'out', tmp_path / 'a' / 'img.png', tmp_path / 'b' / 'img.png'])
    assert rc == 0, err
    assert _colour(str(tmp_path / 'out' / 'a' / 'img.png')) == (250, 0, 0)
    assert _colour(str(tmp_path / 'out' / 'b' / 'img.png')) == (0, 250, 0)


def test_same_stem_in_a_folder_walk_keeps_both_pictures(run_demo, tmp_path):
    _picture(str(tmp_path / 'd' / 'x.bmp'), (250, 0, 0))
    _picture(str(tmp_path / 'd' / 'x.png'), (0, 250, 0))
    rc, out, err = run_demo(['--out', tmp_path / 'out', tmp_path / 'd'])
    assert rc == 0, err
    assert _colour(str(tmp_path / 'out' / 'x.bmp.png')) == (250, 0, 0)
    assert _colour(str(tmp_path / 'out' / 'x.png')) == (0, 250, 0)


def test_refuses_a_file_in_out_it_did_not_draw(run_demo, tmp_path):
    _picture(str(tmp_path / 'in' / 'holiday.jpg'), (5, 5, 5))
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'holiday.jpg').write_bytes(b'the only copy of my holiday photo')
    rc, out, err = run_demo(['--out', tmp_path / 'out', tmp_path / 'in' / 'holiday.jpg'])
    assert rc == 2
    (line,) = _lines(err)
    assert '{} (the picture of {}) exists and was not drawn by demo.py'.format(
        tmp_path / 'out' / 'holiday.jpg', tmp_path / 'in' / 'holiday.jpg') in line
    assert (tmp_path / 'out' / 'holiday.jpg').read_bytes() == b'the only copy of my holiday photo'


def test_unwritable_out_folder_is_an_error_not_pictures_saved(run_demo, tmp_path):
    # tests run as root, where chmod 0o500 does not stop writes: the output folder's parent is a regular file
    _picture(str(tmp_path / 'in' / 'x.jpg'), (5, 5, 5))
    (tmp_path / 'afile').write_bytes(b'x')
    rc, out, err = run_demo(['--out', tmp_path / 'afile' / 'out', tmp_path / 'in'])
    assert rc == 1
    assert _lines(err) == ['demo.py: cannot create the output folder {}: Not a directory'.format(
        tmp_path / 'afile' / 'out')]
    assert 'Pictures saved' not in out


def test_a_failed_write_is_reported_and_the_others_go_on(run_demo, tmp_path):
    # OUT/a is a user's regular file where a's picture needs a folder: a's picture fails, b's is written
    _picture(str(tmp_path / 'a' / 'img.png'), (250, 0, 0))
    _picture(str(tmp_path / 'b' / 'img.png'), (0, 250, 0))
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'a').write_bytes(b'mine')
    rc, out, err = run_demo(['--out', tmp_path / 'out', tmp_path / 'a' / 'img.png', tmp_path / 'b' / 'img.png'])
    assert rc == 1
    assert _lines(err) == [
        'demo.py: error: cannot create folder {}: a file is in the way'.format(tmp_path / 'out' / 'a'),
        'demo.py: 1 of 2 images failed (see above); 1 pictures saved in {}'.format(tmp_path / 'out')]
    assert 'Pictures saved' not in out
    assert (tmp_path / 'out' / 'a').read_bytes() == b'mine'
    assert _colour(str(tmp_path / 'out' / 'b' / 'img.png')) == (0, 250, 0)


def test_an_encoder_failure_is_reported(run_demo, tmp_path, monkeypatch):
    # cv2.imwrite's False was ignored before; pictures are now encoded with cv2.imencode, made to fail here
    _picture(str(tmp_path / 'in' / 'x.png'), (5, 5, 5))
    monkeypatch.setattr(cv2, 'imencode', lambda ext, im, *a: (False, None))
    rc, out, err = run_demo(['--out', tmp_path / 'out', tmp_path / 'in'])
    assert rc == 1
    assert _lines(err)[0] == 'demo.py: error: cannot encode the picture {} as .png'.format(
        tmp_path / 'out' / 'x.png')
    assert os.listdir(str(tmp_path / 'out')) == []                      # no temporary file left either
    assert 'Pictures saved' not in out


def test_unreadable_and_undecodable_images_are_named_and_skipped(run_demo, tmp_path):
    d = tmp_path / 'd'
    _picture(str(d / 'good.png'), (0, 0, 250))
    (d / 'bad.jpg').write_bytes(b'not an image')
    (d / 'empty.png').write_bytes(b'')
    os.symlink(str(tmp_path / 'gone.jpg'), str(d / 'link.jpg'))        # a link to a file that is not there
    rc, out, err = run_demo(['--out', tmp_path / 'out', d])
    assert rc == 1
    assert _lines(err) == [
        'demo.py: warning: cannot decode {} as an image (12 bytes), skipped'.format(d / 'bad.jpg'),
        'demo.py: warning: cannot decode {} as an image (0 bytes), skipped'.format(d / 'empty.png'),
        'demo.py: warning: cannot read {}: No such file or directory, skipped'.format(d / 'link.jpg'),
        'demo.py: 3 of 4 images failed (see above); 1 pictures saved in {}'.format(tmp_path / 'out')]
    assert sorted(os.listdir(str(tmp_path / 'out'))) == ['good.png', 'index.html']


def test_a_non_utf8_file_name_is_read_and_named(run_demo, tmp_path):
    d = os.fsencode(str(tmp_path / 'd'))
    _picture(d + b'/caf\xe9.png', (0, 250, 0), ext='.png')             # cv2.imread crashed on this name
    with open(d + b'/bad\xff.jpg', 'wb') as f:
        f.write(b'garbage')
    rc, out, err = run_demo(['--out', tmp_path / 'out', os.fsdecode(d)])
    assert rc == 1
    assert _lines(err)[0] == 'demo.py: warning: cannot decode {}/bad\\xff.jpg as an image (7 bytes), skipped'.format(
        tmp_path / 'd')
    assert 'Demo for {}/caf\\xe9.png'.format(tmp_path / 'd') in out
    assert sorted(os.listdir(os.fsencode(str(tmp_path / 'out')))) == [b'caf\xe9.png', b'index.html']
    assert _colour(os.fsencode(str(tmp_path / 'out')) + b'/caf\xe9.png') == (0, 250, 0)


# --------------------------------------------------------------------------------------------- index.html
def _links(path):
    import re
    with open(path, encoding='utf-8') as f:
        text = f.read()
    return re.findall(r'<a href="([^"]*)">', text), text


def test_index_lists_every_picture_with_relative_escaped_links(run_demo, tmp_path):
    _picture(str(tmp_path / 'a' / 'img.jpg'), (200, 10, 10))
    _picture(str(tmp_path / 'b' / 'img.jpg'), (10, 200, 10))
    _picture(str(tmp_path / 'b' / 'x&y <z>.png'), (10, 10, 200))
    _picture(str(tmp_path / 'b' / 'q.bmp'), (10, 10, 200))
    rc, out, err = run_demo(['--out', tmp_path / 'out', tmp_path / 'a' / 'img.jpg', tmp_path / 'b'])
    assert rc == 0, err
    index = str(tmp_path / 'out' / 'index.html')
    assert 'Index of the pictures: {}'.format(index) in out
    links, text = _links(index)
    # every picture written, in the inputs' order (b's folder sorted by name), percent-encoded relative links
    assert links == ['a/img.jpg', 'b/img.jpg', 'b/q.bmp.png', 'b/x%26y%20%3Cz%3E.png']
    for rel in ('a/img.jpg', 'b/img.jpg', 'b/q.bmp.png', 'b/x&y <z>.png'):
        assert osp.isfile(str(tmp_path / 'out' / rel))
    assert '<b>b/x&amp;y &lt;z&gt;.png</b>' in text and '<z>' not in text
    assert text.count('<img ') == 4 and '<p>4 pictures</p>' in text
    # a rerun replaces it; no temp file is left beside it
    rc, out, err = run_demo(['--out', tmp_path / 'out', tmp_path / 'a' / 'img.jpg'])
    assert rc == 0, err
    assert _links(index)[0] == ['img.jpg']
    assert not [n for n in os.listdir(str(tmp_path / 'out')) if n.startswith('.')]


def test_index_names_a_non_utf8_picture(run_demo, tmp_path):
    d = os.fsencode(str(tmp_path / 'd'))
    _picture(d + b'/caf\xe9.png', (0, 250, 0), ext='.png')
    rc, out, err = run_demo(['--out', tmp_path / 'out', os.fsdecode(d)])
    assert rc == 0, err
    links, text = _links(str(tmp_path / 'out' / 'index.html'))
    assert links == ['caf%E9.png'] and 'caf\\xe9.png' in text


def test_index_is_not_written_over_a_users_file(run_demo, tmp_path):
    _picture(str(tmp_path / 'in' / 'x.jpg'), (5, 5, 5))
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'index.html').write_bytes(b'<html>my page</html>')
    rc, out, err = run_demo(['--out', tmp_path / 'out', tmp_path / 'in'])
    assert rc == 2
    assert _lines(err) == ['demo.py: refusing to write: {} exists and was not written by demo.py; choose another '
                           '--out'.format(tmp_path / 'out' / 'index.html')]
    assert os.listdir(str(tmp_path / 'out')) == ['index.html']         # nothing drawn
    assert (tmp_path / 'out' / 'index.html').read_bytes() == b'<html>my page</html>'


def test_no_index_when_no_picture_was_saved(run_demo, tmp_path):
    (tmp_path / 'in').mkdir()
    (tmp_path / 'in' / 'bad.jpg').write_bytes(b'not an image')
    rc, out, err = run_demo(['--out', tmp_path / 'out', tmp_path / 'in'])
    assert rc == 1
    assert os.listdir(str(tmp_path / 'out')) == []


def test_threads_sets_torchs_threads(run_demo, tmp_path, monkeypatch):
    import torch
    seen = []
    monkeypatch.setattr(torch, 'set_num_threads', lambda n: seen.append(n))
    _picture(str(tmp_path / 'in' / 'x.jpg'), (5, 5, 5))
    rc, out, err = run_demo(['--threads', '1', '--out', tmp_path / 'out', tmp_path / 'in'])
    assert rc == 0, err
    assert seen == [1]
    with pytest.raises(SystemExit) as e:
        demo.parse_args(['--threads', '0'])
    assert e.value.code == 2
