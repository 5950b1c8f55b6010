"""experiments/scripts/faster_rcnn_alt_opt.sh and fast_rcnn.sh: the command lines they hand to the tools, run with
PYTHON set to a stand-in that records its arguments and prints the lines the real tools end with."""
import os
import os.path as osp
import re
import stat
import subprocess

import pytest

from tiny_training import ROOT

FAKE = r'''#!/bin/bash
echo "$@" >> "{record}"
case "$1" in
  ./tools/train_faster_rcnn_alt_opt.py) echo "Final model: /out/TINY_faster_rcnn_final.pth" ;;
  ./tools/rpn_generate.py) for a in "$@"; do last_imdb=$a; done; echo "Wrote RPN proposals to: /out/$last_imdb.npz" ;;
  ./tools/train_net.py) echo "Wrote snapshot to: /out/tiny_fast_rcnn_iter_2000.pth" ;;
esac
'''


def _run(tmp_path, script, args, env=None):
    record = tmp_path / 'calls.txt'
    if record.exists():
        record.unlink()
    fake = tmp_path / 'python'
    fake.write_text(FAKE.format(record=record))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    e = dict(os.environ, PYTHON=str(fake), NPROC='1', **(env or {}))
    proc = subprocess.run(['bash', osp.join(ROOT, 'experiments', 'scripts', script)] + args, env=e,
                          capture_output=True, text=True, timeout=60)
    log = re.search(r'Logging output to (\S+)', proc.stdout)
    if log:
        os.remove(osp.join(ROOT, log.group(1)))
    calls = record.read_text().splitlines() if record.exists() else []
    return proc, [c.split() for c in calls]


def test_alt_opt_script_sets_the_datasets_solvers_and_tests_the_final_model(tmp_path):
    proc, calls = _run(tmp_path, 'faster_rcnn_alt_opt.sh', ['cpu', 'TINY', 'shapes', '--set', 'EXP_DIR', 'foo'])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    train, test = calls
    assert train[0] == './tools/train_faster_rcnn_alt_opt.py' and '--weights' not in train
    assert train[train.index('--set'):] == ['--set', 'MODELS_DIR', 'models/shapes', 'EXP_DIR', 'foo']
    assert train[train.index('--imdb') + 1] == 'shapes_trainval'
    assert test[0] == './tools/test_net.py'
    assert test[test.index('--net') + 1] == '/out/TINY_faster_rcnn_final.pth'
    assert test[test.index('--imdb') + 1] == 'shapes_test'
    assert test[test.index('--set'):] == ['--set', 'EXP_DIR', 'foo']


def test_alt_opt_script_voc_weights_and_refusals(tmp_path):
    proc, calls = _run(tmp_path, 'faster_rcnn_alt_opt.sh', ['0', 'VGG16', 'pascal_voc'], {'WEIGHTS': '/w.pth'})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    train = calls[0]
    assert train[train.index('--weights') + 1] == '/w.pth' and train[train.index('--device') + 1] == 'cuda:0'
    assert train[-3:] == ['--set', 'MODELS_DIR', 'models/pascal_voc']
    proc, calls = _run(tmp_path, 'faster_rcnn_alt_opt.sh', ['cpu', 'VGG16', 'coco'])
    assert proc.returncode == 1 and 'Not implemented' in proc.stdout and not calls
    proc, calls = _run(tmp_path, 'faster_rcnn_alt_opt.sh', ['cpu', 'TINY', 'pascal_voc'])
    assert proc.returncode == 1 and 'No alt-opt solvers for TINY' in proc.stdout and not calls


def test_fast_rcnn_script_with_an_rpn_generates_proposals_for_both_splits(tmp_path):
    proc, calls = _run(tmp_path, 'fast_rcnn.sh', ['cpu', 'TINY', 'shapes'], {'RPN_NET': '/rpn.pth'})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    gen_train, gen_test, train, test = calls
    assert gen_train[0] == gen_test[0] == './tools/rpn_generate.py'
    assert gen_train[gen_train.index('--net') + 1] == '/rpn.pth'
    assert gen_train[-1] == 'shapes_trainval' and gen_test[-1] == 'shapes_test'
    assert train[train.index('--solver') + 1] == 'models/shapes/TINY/fast_rcnn/solver.yml'
    assert train[train.index('--proposals') + 1] == '/out/shapes_trainval.npz' and '--cfg' not in train
    assert test[test.index('--net') + 1] == '/out/tiny_fast_rcnn_iter_2000.pth'
    assert test[test.index('--proposals') + 1] == '/out/shapes_test.npz'


@pytest.mark.parametrize('dataset, net', [('pascal_voc', 'ZF'), ('coco', 'VGG16')])
def test_fast_rcnn_script_on_selective_search(tmp_path, dataset, net):
    proc, calls = _run(tmp_path, 'fast_rcnn.sh', ['1', net, dataset])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    train, test = calls
    assert train[train.index('--weights') + 1] == 'data/imagenet_models/{}.v2.caffemodel'.format(net)
    assert '--proposals' not in train and '--proposals' not in test


def test_scripts_find_the_weights_fetch_imagenet_models_downloads_by_default(tmp_path):
    """fetch_imagenet_models.sh fetches torchvision's vgg16-397923af.pth unless asked for the Caffe models."""
    folder = osp.join(ROOT, 'data', 'imagenet_models')
    tv, caffe = osp.join(folder, 'vgg16-397923af.pth'), osp.join(folder, 'VGG16.v2.caffemodel')
    if osp.exists(tv) or osp.exists(caffe):
        pytest.skip('this checkout has ImageNet weights; the test would have to move them')
    os.makedirs(folder, exist_ok=True)
    open(tv, 'w').close()
    try:
        for script in ('faster_rcnn_end2end.sh', 'faster_rcnn_alt_opt.sh', 'fast_rcnn.sh'):
            proc, calls = _run(tmp_path, script, ['0', 'VGG16', 'pascal_voc'])
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert calls[0][calls[0].index('--weights') + 1] == 'data/imagenet_models/vgg16-397923af.pth', script
    finally:
        os.remove(tv)


def test_a_device_that_is_not_one_stops_the_script(tmp_path):
    proc, calls = _run(tmp_path, 'faster_rcnn_end2end.sh', ['gpu0', 'TINY', 'shapes'])
    assert proc.returncode != 0 and 'DEVICE must be a GPU id, cuda, cuda:N or cpu (got gpu0)' in proc.stderr
    assert not calls


def test_end2end_script_takes_a_labelimg_folder_and_iters(tmp_path):
    folder = tmp_path / 'my_set'
    folder.mkdir()
    proc, calls = _run(tmp_path, 'faster_rcnn_end2end.sh', ['cuda', 'TINY', str(folder)], {'ITERS': '20'})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    train, test = calls
    assert train[train.index('--imdb') + 1] == str(folder) + ':trainval'
    assert train[train.index('--solver') + 1] == 'models/shapes/TINY/faster_rcnn_end2end/solver.yml'
    assert train[train.index('--iters') + 1] == '20' and train[train.index('--device') + 1] == 'cuda'
    assert test[test.index('--imdb') + 1] == str(folder) + ':test' and '--iters' not in test
    proc, calls = _run(tmp_path, 'faster_rcnn_end2end.sh', ['0', 'VGG16', str(folder)], {'WEIGHTS': '/w.pth'})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert calls[0][calls[0].index('--solver') + 1] == 'models/pascal_voc/VGG16/faster_rcnn_end2end/solver.yml'
    proc, calls = _run(tmp_path, 'faster_rcnn_end2end.sh', ['cpu', 'TINY', str(tmp_path / 'missing')])
    assert proc.returncode == 1 and 'No dataset given' in proc.stdout and not calls
