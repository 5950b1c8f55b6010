"""The 4-stage alternating optimisation on a 3-image folder: all stages, then a rerun that skips every stage, and
a run resumed in the middle of stage 3 that ends with the same final weights."""
import glob
import os
import os.path as osp
import shutil

import pytest
import torch

from tiny_training import ROOT, make_voc_folder

pytestmark = pytest.mark.slow  # trains all four stages; `pytest -m "not slow"` skips it


def _solvers(models_dir):
    src = osp.join(ROOT, 'models', 'shapes', 'TINY', 'faster_rcnn_alt_opt')
    dst = osp.join(models_dir, 'TINY', 'faster_rcnn_alt_opt')
    os.makedirs(dst)
    for f in os.listdir(src):
        lines = []
        for line in open(osp.join(src, f)):
            if line.startswith('max_iter:'):
                line = 'max_iter: 4\n'
            elif line.startswith('snapshot:'):
                line = 'snapshot: 2\n'
            elif line.startswith('display:'):
                line = 'display: 0\n'
            lines.append(line)
        open(osp.join(dst, f), 'w').write(''.join(lines))


def _run(tmp_path, log):
    from fast_rcnn.alt_opt import AltOpt
    from fast_rcnn.config import cfg, cfg_copy, cfg_from_file
    c = cfg_copy(cfg)
    cfg_from_file(osp.join(ROOT, 'experiments', 'cfgs', 'faster_rcnn_alt_opt.yml'), c)
    c.MODELS_DIR = str(tmp_path / 'models')
    c.ROOT_DIR = str(tmp_path)
    c.TRAIN.RPN_PRE_NMS_TOP_N = 300
    c.TRAIN.RPN_POST_NMS_TOP_N = 60
    run = AltOpt('TINY', str(tmp_path / 'data') + ':trainval', c, None, torch.device('cpu'), 3, log=log)
    return run, run.run()


def test_alt_opt_runs_skips_and_resumes(tmp_path, capsys):
    make_voc_folder(str(tmp_path / 'data'), ['a', 'b'])
    _solvers(str(tmp_path / 'models'))
    lines = []
    log = lambda *a, **k: lines.append(' '.join(str(x) for x in a))  # noqa: E731
    run, final = _run(tmp_path, log)
    assert lines[-1] == 'Final model: {}'.format(final)
    assert osp.basename(final) == 'TINY_faster_rcnn_final.pth'
    out = run.output_dir
    want = torch.load(final, weights_only=True)['model']
    assert len(glob.glob(osp.join(out, '*_rpn_proposals.npz'))) == 2

    lines.clear()
    _run(tmp_path, log)
    assert sum(line.startswith('Skipping stage') for line in lines) == 6  # 4 stages, 2 proposal files

    # as a kill in stage 3 after its first snapshot: its last snapshot, what follows it, and the final model gone
    for pattern in ('tiny_rpn_stage2_iter_4.pth', '*stage2_iter_4_rpn_proposals.npz', 'tiny_fast_rcnn_stage2_*',
                    'TINY_faster_rcnn_final.pth'):
        for p in glob.glob(osp.join(out, pattern)):
            os.remove(p)
    capsys.readouterr()
    _, final2 = _run(tmp_path, log)
    printed = capsys.readouterr().out.splitlines()
    assert any(line.startswith('Resuming from') and line.endswith('tiny_rpn_stage2_iter_2.pth') for line in printed)
    got = torch.load(final2, weights_only=True)['model']
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want)
    shutil.rmtree(str(tmp_path / 'output'))
