"""RoIDataLayer: the original's shuffle order, resuming, and DataLoader workers giving the same minibatches."""
import cv2
import numpy as np
import pytest

from roi_data_layer.layer import MinibatchSchedule, RoIDataLayer, make_data_loader


def original_order(widths, heights, ims, grouping, seed, n_batches):
    """An independent transcription of the original's _shuffle_roidb_inds/_get_next_minibatch_inds, driven by the
    global numpy RNG exactly as the original was (np.random.seed, then np.random.permutation)."""
    np.random.seed(seed)
    widths, heights = np.asarray(widths), np.asarray(heights)
    n = len(widths)
    state = {}

    def shuffle():
        if grouping:
            horz = widths >= heights
            inds = np.hstack((np.random.permutation(np.where(horz)[0]),
                              np.random.permutation(np.where(~horz)[0])))
            inds = inds.reshape(-1, 2)
            inds = inds[np.random.permutation(np.arange(inds.shape[0])), :].reshape(-1)
            state['perm'] = inds
        else:
            state['perm'] = np.random.permutation(np.arange(n))
        state['cur'] = 0

    shuffle()
    out = []
    for _ in range(n_batches):
        if state['cur'] + ims >= n:
            shuffle()
        out.append(state['perm'][state['cur']:state['cur'] + ims].tolist())
        state['cur'] += ims
    return out


W = [50, 30, 60, 30, 70, 20, 80, 40, 35, 55]
H = [30, 50, 30, 60, 30, 70, 30, 20, 36, 20]


@pytest.mark.parametrize('ims,grouping', [(1, True), (2, True), (1, False), (2, False)])
def test_order_is_the_originals(ims, grouping):
    s = MinibatchSchedule(W, H, ims, grouping, seed=3)
    got = [s.next_inds().tolist() for _ in range(40)]
    assert got == original_order(W, H, ims, grouping, 3, 40)
    if grouping and ims == 2:  # each minibatch holds one orientation
        for a, b in got:
            assert (W[a] >= H[a]) == (W[b] >= H[b])


def test_odd_count_does_not_crash():
    s = MinibatchSchedule(W[:9], H[:9], 1, True, seed=0)
    got = [int(s.next_inds()[0]) for _ in range(30)]
    assert set(got) <= set(range(9))


def test_skip_to_and_state():
    a = MinibatchSchedule(W, H, 2, True, seed=5)
    seq = [a.next_inds().tolist() for _ in range(25)]
    b = MinibatchSchedule(W, H, 2, True, seed=5)
    b.skip_to(17)
    assert [b.next_inds().tolist() for _ in range(8)] == seq[17:]
    c = MinibatchSchedule(W, H, 2, True, seed=99)
    a2 = MinibatchSchedule(W, H, 2, True, seed=5)
    for _ in range(11):
        a2.next_inds()
    c.load_state_dict(a2.state_dict())
    assert [c.next_inds().tolist() for _ in range(14)] == seq[11:]


@pytest.fixture
def roidb(tmp_path):
    rng = np.random.RandomState(0)
    entries = []
    for i, (w, h) in enumerate(zip(W, H)):
        p = str(tmp_path / '{}.png'.format(i))
        cv2.imwrite(p, rng.randint(0, 255, size=(h, w, 3)).astype(np.uint8))
        ov = np.zeros((1, 3), np.float32)
        ov[0, 1 + i % 2] = 1
        entries.append({'image': p, 'width': w, 'height': h, 'flipped': bool(i % 3 == 0),
                        'boxes': np.array([[1, 1, w // 2, h // 2]], np.float32),
                        'gt_classes': np.array([1 + i % 2], np.int32), 'gt_overlaps': ov,
                        'max_overlaps': np.ones(1, np.float32), 'max_classes': np.array([1 + i % 2])})
    return entries


def _cfg(cfg_copy):
    cfg_copy.TRAIN.HAS_RPN = True
    cfg_copy.TRAIN.IMS_PER_BATCH = 1
    cfg_copy.TRAIN.SCALES = (40, 50, 60, 70)
    cfg_copy.TRAIN.MAX_SIZE = 200
    return cfg_copy


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_resume_is_bit_identical(roidb, cfg_copy):
    cfg = _cfg(cfg_copy)
    layer = RoIDataLayer(roidb, 3, cfg, seed=7)
    full = [layer.forward() for _ in range(12)]
    assert len({b['data'].shape[2] for b in full}) > 1  # several scales were drawn
    part = RoIDataLayer(roidb, 3, cfg, seed=7)
    for _ in range(5):
        part.forward()
    state = part.state_dict()
    resumed = RoIDataLayer(roidb, 3, cfg, seed=123)
    resumed.load_state_dict(state)
    for i in range(5, 12):
        _same(resumed.forward(), full[i])
    skipped = RoIDataLayer(roidb, 3, cfg, seed=7)
    skipped.skip_to(9)
    _same(skipped.forward(), full[9])
    shared = RoIDataLayer(roidb, 3, cfg, seed=7)  # as one of two training processes: every other minibatch
    for i in range(0, 12, 2):
        shared.skip(1)
        _same(shared.forward(), full[i + 1])


def test_dataloader_workers_match_single_process(roidb, cfg_copy):
    cfg = _cfg(cfg_copy)
    layer = RoIDataLayer(roidb, 3, cfg, seed=7)
    full = [layer.forward() for _ in range(10)]
    loader = make_data_loader(roidb, 3, cfg, seed=7, start_iter=3, num_iters=7, num_workers=2)
    got = list(loader)
    assert [b['iteration'] for b in got] == list(range(3, 10))
    for b in got:
        it = b.pop('iteration')
        _same(b, full[it])


def test_minibatches_per_scale_share_the_first_ones_draw(roidb, cfg_copy):
    cfg = _cfg(cfg_copy)
    plain = RoIDataLayer(roidb, 3, cfg, seed=7)
    plain_blobs = [plain.forward() for _ in range(12)]
    cfg.TRAIN.MINIBATCHES_PER_SCALE = 2
    grouped = RoIDataLayer(roidb, 3, cfg, seed=7)
    sched = MinibatchSchedule(W, H, 1, cfg.TRAIN.ASPECT_GROUPING, 7)
    targets = []
    for i in range(12):
        blobs = grouped.forward()
        j = int(sched.next_inds()[0])
        # the shortest side after scaling (MAX_SIZE 200 never binds for these sizes)
        targets.append(int(round(float(blobs['im_info'][0, 2]) * min(W[j], H[j]))))
        if i % 2 == 0:  # a group's first minibatch draws as it does alone
            _same(blobs, plain_blobs[i])
    assert all(t in cfg.TRAIN.SCALES for t in targets)
    assert targets[0::2] == targets[1::2]
    assert len(set(targets)) > 1  # the groups still draw several scales
    cfg.TRAIN.MINIBATCHES_PER_SCALE = 0
    with pytest.raises(ValueError, match='MINIBATCHES_PER_SCALE'):
        RoIDataLayer(roidb, 3, cfg, seed=7).forward()


def test_prefetching_workers_give_a_process_its_own_minibatches(roidb, cfg_copy):
    # TRAIN.USE_PREFETCH: as one of two training processes (odd minibatches), the workers make what forward()
    # makes in the process, also after a resume from a saved state
    cfg = _cfg(cfg_copy)
    layer = RoIDataLayer(roidb, 3, cfg, seed=7)
    full = [layer.forward() for _ in range(12)]
    shared = RoIDataLayer(roidb, 3, cfg, seed=7)
    shared.start_prefetch(2, takes=lambda m: m % 2 == 1)
    got = {}
    for i in range(0, 6, 2):
        shared.skip(1)
        got[i + 1] = shared.forward()
    state = shared.state_dict()
    resumed = RoIDataLayer(roidb, 3, cfg, seed=7)
    resumed.start_prefetch(1, takes=lambda m: m % 2 == 1)
    resumed.load_state_dict(state)
    for i in range(6, 12, 2):
        resumed.skip(1)
        got[i + 1] = resumed.forward()
    for i, blobs in got.items():
        assert blobs.pop('iteration') == i
        _same(blobs, full[i])
    # skipping a minibatch the workers were told this process takes is caught, not silently misaligned
    with pytest.raises(RuntimeError, match='prefetched minibatch is number 13, the schedule is at 14'):
        resumed.skip(2)
        resumed.forward()
