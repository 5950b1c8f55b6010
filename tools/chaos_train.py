#!/usr/bin/env python
"""Chaos test of train_net's exact resume: SIGKILL a small training run again and again, then compare.

    .venv/bin/python tools/chaos_train.py [--kills N] [--seed S] [--iters I] [--snapshot-every K] [--images M]
        [--scale PX] [--max-size PX] [--write-fraction F] [--threads T] [--timeout SEC] [--workdir DIR] [--clean]

Slow and not part of the test suite. It drives tools/train_net.py through its command line only:

1. generates (or reuses) a small shapes dataset, <workdir>/data/chaos_shapes_<M> (data/scripts/make_shapes.py),
   trained on as the folder imdb ``<folder>:trainval``;
2. writes a copy of TINY's solver.yml with ``display: 1`` (a log line per iteration, which the kills follow) and
   ``snapshot: K`` (also passed as ``--set TRAIN.SNAPSHOT_ITERS K``: older train_nets let the solver's value win);
3. trains a reference uninterrupted (EXP_DIR <workdir>/ref, relative to output/);
4. in EXP_DIR <workdir>/chaos runs the same command N times and SIGKILLs its process group each time: some kills
   land while a snapshot is being written (the output folder is watched with inotify, or polled, for a temp
   file to appear; the kill comes within the shortest write time the reference showed), the others after a
   random iteration plus a random fraction of one, a few during start-up; then reruns it until it finishes;
5. compares the final snapshot's weights (``torch.load(weights_only=True)['model']``, every tensor with
   ``torch.equal``) with the reference's (and every snapshot iteration both folders hold, to name the first that
   differs), and lists temp files left in the chaos output folder (names containing '.tmp' or starting with
   '.'; '*.lock' files are listed as locks, not temp files).

Prints a table of the kills and ``chaos: N kills (W during snapshot writes), final weights identical: yes,
temp files left: 0``; exits 0 only if the weights are identical and no temp file is left (1 otherwise, 2 on the
global timeout or a run that failed by itself).
"""
import argparse
import ctypes
import json
import os
import os.path as osp
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import time

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
SOLVER = osp.join(ROOT, 'models', 'shapes', 'TINY', 'faster_rcnn_end2end', 'solver.yml')
CFG = osp.join(ROOT, 'experiments', 'cfgs', 'faster_rcnn_end2end.yml')
ITER_IN_NAME = re.compile(r'_iter_(\d+)\.pth')
SNAPSHOT_NAME = re.compile(r'^[^.].*_iter_(\d+)\.pth$')
LOG_ITER = re.compile(r'^(?:\[[^\]]*\] )?Iteration (\d+),')  # display lines may start with a [time] stamp
LOG_OUTPUT = re.compile(r'^Output will be saved to `(.*)`')
LOG_RESUME = re.compile(r'^Resuming from .*_iter_(\d+)\.pth')

# inotify (linux/inotify.h)
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200


class GlobalTimeout(Exception):
    pass


class RunFailed(Exception):
    pass


# ----------------------------------------------------------------------------------------------- files
def kind_of(name):
    """'lock', 'temp', 'snapshot' or 'other' for a file name in an output folder."""
    if name.endswith('.lock') and '.tmp' not in name:
        return 'lock'
    if '.tmp' in name or name.startswith('.'):
        return 'temp'
    if SNAPSHOT_NAME.match(name):
        return 'snapshot'
    return 'other'


def list_files(folder):
    """Paths relative to ``folder`` of every file below it."""
    out = []
    for dirpath, _, files in os.walk(folder):
        for f in files:
            out.append(osp.relpath(osp.join(dirpath, f), folder))
    return sorted(out)


def temp_files(folder):
    return [f for f in list_files(folder) if kind_of(osp.basename(f)) == 'temp']


def snapshots(folder):
    """{iteration: path} of the snapshots directly in ``folder``."""
    found = {}
    if osp.isdir(folder):
        for name in os.listdir(folder):
            m = SNAPSHOT_NAME.match(name)
            if m and kind_of(name) == 'snapshot':
                found[int(m.group(1))] = osp.join(folder, name)
    return found


def newest_snapshot(folder):
    snaps = snapshots(folder)
    if not snaps:
        return 0, None
    it = max(snaps)
    return it, snaps[it]


def load_model(path):
    import torch
    return torch.load(path, map_location='cpu', weights_only=True)['model']


def loadable(path):
    try:
        load_model(path)
        return True
    except Exception:  # noqa: BLE001 - any failure is the finding
        return False


def same_weights(a, b):
    """(identical, first differing key or None) of two snapshots' model state dicts."""
    import torch
    ma, mb = load_model(a), load_model(b)
    if set(ma) != set(mb):
        return False, 'keys: {}'.format(sorted(set(ma) ^ set(mb))[:3])
    for k in sorted(ma):
        if ma[k].dtype != mb[k].dtype or ma[k].shape != mb[k].shape or not torch.equal(ma[k], mb[k]):
            return False, k
    return True, None


# ----------------------------------------------------------------------------------------------- watching
class DirWatch:
    """Files appearing in and leaving one folder: inotify where available, else polling every 2 ms."""

    def __init__(self, folder):
        self.folder = folder
        self.fd = None
        self.buf = b''
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd >= 0:
                wd = libc.inotify_add_watch(fd, folder.encode(), IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)
                if wd >= 0:
                    self.fd = fd
                else:
                    os.close(fd)
        except (OSError, AttributeError):
            self.fd = None
        self.seen = set(os.listdir(folder))
        self.method = 'inotify' if self.fd is not None else 'polling'

    def events(self, timeout):
        """[('new' | 'gone', name)] within ``timeout`` seconds (maybe empty)."""
        timeout = max(0.0, timeout)
        if self.fd is None:
            time.sleep(min(timeout, 0.002))
            try:
                now = set(os.listdir(self.folder))
            except OSError:
                return []
            ev = [('new', n) for n in sorted(now - self.seen)] + [('gone', n) for n in sorted(self.seen - now)]
            self.seen = now
            return ev
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return []
        try:
            self.buf += os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        ev = []
        while len(self.buf) >= 16:
            _, mask, _, n = struct.unpack_from('iIII', self.buf)
            if len(self.buf) < 16 + n:
                break
            name = self.buf[16:16 + n].rstrip(b'\0').decode('utf-8', 'replace')
            self.buf = self.buf[16 + n:]
            ev.append(('new' if mask & (IN_CREATE | IN_MOVED_TO) else 'gone', name))
        return ev

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class LogTail:
    """Follows a run's log file: the last iteration printed, when 'Solving...' came, the output folder."""

    def __init__(self, path, t0):
        self.path = path
        self.t0 = t0
        self.pos = 0
        self.partial = b''
        self.last_iter = None
        self.t_solving = None
        self.t_last_iter = None
        self.output_dir = None
        self.resumed_from = 0

    def update(self):
        try:
            with open(self.path, 'rb') as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return
        if not data:
            return
        self.pos += len(data)
        lines = (self.partial + data).split(b'\n')
        self.partial = lines.pop()
        now = time.monotonic() - self.t0
        for raw in lines:
            line = raw.decode('utf-8', 'replace').rstrip('\r')
            m = LOG_ITER.match(line)
            if m:
                self.last_iter = int(m.group(1))
                self.t_last_iter = now
            elif line.startswith('Solving...') and self.t_solving is None:
                self.t_solving = now
            elif LOG_OUTPUT.match(line):
                self.output_dir = LOG_OUTPUT.match(line).group(1)
            elif LOG_RESUME.match(line):
                self.resumed_from = int(LOG_RESUME.match(line).group(1))


def log_tail(path, n=15):
    try:
        with open(path, 'rb') as f:
            lines = f.read().decode('utf-8', 'replace').splitlines()
    except OSError:
        return ''
    return '\n'.join('    | ' + ln for ln in lines[-n:])


# ----------------------------------------------------------------------------------------------- runs
class Runner:
    def __init__(self, args, cmd_base, deadline):
        self.args = args
        self.cmd_base = cmd_base
        self.deadline = deadline
        self.env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS=str(args.threads),
                        MKL_NUM_THREADS=str(args.threads))

    def run(self, exp_dir, out_dir, log_path, plan=None, rng=None, write_min=0.005):
        """One run of train_net in EXP_DIR ``exp_dir`` (output folder ``out_dir``). ``plan``: None (run to the
        end) or {'mode': 'write' | 'iter' | 'startup', ...}: when to SIGKILL it. Returns a record."""
        os.makedirs(out_dir, exist_ok=True)
        temps_before = set(temp_files(out_dir))
        watch = DirWatch(out_dir)
        cmd = self.cmd_base + ['EXP_DIR', exp_dir]
        with open(log_path, 'wb') as logf:
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=self.env)
        tail = LogTail(log_path, t0)
        created = {}      # temp name -> creation time
        write_times = []  # seconds each temp file lived (creation to rename/removal)
        kill_at = None
        if plan is not None and plan['mode'] == 'startup':
            kill_at = t0 + plan['delay']
        killed = False
        rc = None
        try:
            while True:
                rc = proc.poll()
                if rc is not None:
                    break
                now = time.monotonic()
                if now > self.deadline:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    raise GlobalTimeout('global timeout ({} s) during {}'.format(self.args.timeout, log_path))
                wait = 0.02 if kill_at is None else min(0.02, kill_at - now)
                for kind, name in watch.events(wait):
                    t = time.monotonic()
                    if kind_of(name) != 'temp':
                        continue
                    if kind == 'new':
                        created[name] = t
                        m = ITER_IN_NAME.search(name)
                        it = int(m.group(1)) if m else None
                        if (plan is not None and plan['mode'] == 'write' and kill_at is None
                                and (it is None or it >= plan['target'])):
                            kill_at = t + rng.uniform(0.0, 0.8 * write_min)
                    elif name in created:
                        write_times.append(t - created.pop(name))
                tail.update()
                if (plan is not None and plan['mode'] == 'iter' and kill_at is None and tail.last_iter is not None
                        and tail.last_iter >= plan['target']):
                    kill_at = time.monotonic() + rng.uniform(0.0, plan['per_iter'])
                if kill_at is not None and time.monotonic() >= kill_at:
                    os.killpg(proc.pid, signal.SIGKILL)
                    t_kill = time.monotonic() - t0
                    proc.wait()
                    killed = True
                    break
        finally:
            watch.close()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        tail.update()
        rec = {'rc': proc.returncode, 'killed': killed, 'seconds': time.monotonic() - t0,
               'moment': t_kill if killed else None, 'last_iter': tail.last_iter, 'resumed_from': tail.resumed_from,
               't_solving': tail.t_solving, 't_last_iter': tail.t_last_iter, 'write_times': write_times,
               'reported_output_dir': tail.output_dir, 'log': log_path, 'watch': watch.method}
        temps_now = set(temp_files(out_dir))
        rec['temps_on_disk'] = sorted(temps_now)
        rec['new_temps'] = sorted(temps_now - temps_before)
        rec['during_write'] = killed and bool(rec['new_temps'])
        it, path = newest_snapshot(out_dir)
        rec['newest'] = it
        rec['newest_loadable'] = loadable(path) if path else None
        return rec


def plan_kill(k, n, mode, newest, iters, snap_every, est, rng):
    """The k-th kill's plan (0-based of n) given the newest snapshot on disk."""
    remaining = iters - newest
    step = remaining / float(n - k + 1)  # this kill's share; the last share is the final run's
    if mode == 'write':
        writes = sorted(set([w for w in range(snap_every, iters + 1, snap_every) if w > newest] + [iters]))
        reach = newest + max(snap_every, 1.5 * step)
        near = [w for w in writes if w <= reach] or writes[:1]
        return {'mode': 'write', 'target': rng.choice(near)}
    if mode == 'iter' and newest < iters - 1:
        target = newest + max(1, int(round(step * rng.uniform(0.5, 1.5))))
        return {'mode': 'iter', 'target': min(target, iters - 1), 'per_iter': est['per_iter']}
    return {'mode': 'startup', 'delay': rng.uniform(0.1, 1.0) * est['startup']}


# ----------------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--kills', type=int, default=10, help='SIGKILLs of the chaos run (default 10)')
    p.add_argument('--seed', type=int, default=0, help='seed of the kills\' moments (default 0)')
    p.add_argument('--iters', type=int, default=40, help='training iterations (default 40)')
    p.add_argument('--snapshot-every', type=int, default=4, help='snapshot every K iterations (default 4)')
    p.add_argument('--images', type=int, default=16, help='trainval images of the generated dataset (default 16)')
    p.add_argument('--scale', type=int, default=192, help='TRAIN.SCALES, one scale (default 192)')
    p.add_argument('--max-size', type=int, default=320, help='TRAIN.MAX_SIZE (default 320)')
    p.add_argument('--write-fraction', type=float, default=0.4,
                   help='share of the kills aimed at snapshot writes (default 0.4; at least one when > 0)')
    p.add_argument('--threads', type=int, default=1, help='train_net --threads (default 1)')
    p.add_argument('--timeout', type=float, default=3600, help='global limit in seconds (default 3600)')
    p.add_argument('--workdir', default=osp.join(ROOT, 'output', 'chaos_train'),
                   help='scratch folder: dataset, solver copy, logs, both output folders (default output/chaos_train)')
    p.add_argument('--python', default=sys.executable, help='python that runs train_net (default this one)')
    p.add_argument('--clean', action='store_true', help='remove both output folders when the check passes')
    args = p.parse_args(argv)
    if args.kills < 0 or args.iters < 2 or args.snapshot_every < 1 or args.images < 2:
        p.error('need --kills >= 0, --iters >= 2, --snapshot-every >= 1, --images >= 2')
    return args


def main(argv=None):
    args = parse_args(argv)
    t_start = time.monotonic()
    deadline = t_start + args.timeout
    rng = random.Random(args.seed)
    work = osp.abspath(args.workdir)
    logs = osp.join(work, 'logs')
    os.makedirs(logs, exist_ok=True)

    # dataset (reused when complete)
    data = osp.join(work, 'data', 'chaos_shapes_{}'.format(args.images))
    subprocess.run([args.python, osp.join(ROOT, 'data', 'scripts', 'make_shapes.py'), '--out', data,
                    '--num-trainval', str(args.images), '--num-test', '1', '--workers', '1'],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL, timeout=max(1, deadline - time.monotonic()))
    imdb = data + ':trainval'
    imdb_name = osp.basename(data) + '_trainval'

    # solver copy: snapshot every K, a log line every iteration
    import yaml
    with open(SOLVER) as f:
        solver = yaml.safe_load(f)
    solver['snapshot'] = args.snapshot_every
    solver['display'] = 1
    solver_path = osp.join(work, 'solver.yml')
    with open(solver_path, 'w') as f:
        f.write('# written by tools/chaos_train.py from {}\n'.format(osp.relpath(SOLVER, ROOT)))
        yaml.safe_dump(solver, f, sort_keys=False)

    out_root = osp.join(ROOT, 'output')
    exp = {k: osp.relpath(osp.join(work, k), out_root) for k in ('ref', 'chaos')}
    outdir = {k: osp.join(work, k, imdb_name) for k in exp}
    for d in outdir.values():
        shutil.rmtree(d, ignore_errors=True)
    cmd = [args.python, osp.join(ROOT, 'tools', 'train_net.py'), '--solver', solver_path, '--imdb', imdb,
           '--cfg', CFG, '--iters', str(args.iters), '--threads', str(args.threads),
           '--set', 'TRAIN.SCALES', '[{}]'.format(args.scale), 'TRAIN.MAX_SIZE', str(args.max_size),
           'TRAIN.SNAPSHOT_ITERS', str(args.snapshot_every)]
    print('chaos_train: {} kills, seed {}, {} iterations, a snapshot every {}, {} images at {} px (max {}), '
          'threads {}'.format(args.kills, args.seed, args.iters, args.snapshot_every, args.images, args.scale,
                              args.max_size, args.threads))
    print('command: {} ... EXP_DIR <{}>'.format(' '.join(osp.relpath(c, ROOT) if c.startswith(ROOT) else c
                                                        for c in cmd), '|'.join(exp.values())), flush=True)
    runner = Runner(args, cmd, deadline)
    rows = []
    status = 0
    try:
        # the reference, uninterrupted
        ref = runner.run(exp['ref'], outdir['ref'], osp.join(logs, 'ref.log'))
        if ref['rc'] != 0:
            raise RunFailed('the reference run failed (rc {}):\n{}'.format(ref['rc'], log_tail(ref['log'])))
        if ref['reported_output_dir'] and osp.abspath(ref['reported_output_dir']) != outdir['ref']:
            raise RunFailed('train_net wrote to {}, expected {}'.format(ref['reported_output_dir'], outdir['ref']))
        t_solve = ref['t_solving'] or 0.5 * ref['seconds']
        est = {'startup': t_solve,
               'per_iter': max(0.01, ((ref['t_last_iter'] or ref['seconds']) - t_solve) / args.iters)}
        write_min = min(ref['write_times']) if ref['write_times'] else 0.005
        print('reference: {:.1f} s (start-up {:.1f} s, {:.3f} s an iteration; {} snapshot writes seen, '
              '{:.1f}-{:.1f} ms each; watching by {})'.format(
                  ref['seconds'], est['startup'], est['per_iter'], len(ref['write_times']),
                  1000 * min(ref['write_times'] or [0]), 1000 * max(ref['write_times'] or [0]),
                  ref['watch']), flush=True)

        # the kills
        n_write = 0 if args.write_fraction <= 0 else max(1, int(round(args.kills * args.write_fraction)))
        n_write = min(n_write, args.kills)
        n_start = int(round(0.1 * args.kills)) if args.kills >= 5 else 0
        modes = ['write'] * n_write + ['startup'] * n_start + ['iter'] * (args.kills - n_write - n_start)
        rng.shuffle(modes)
        for k, mode in enumerate(modes):
            newest, _ = newest_snapshot(outdir['chaos'])
            plan = plan_kill(k, args.kills, mode, newest, args.iters, args.snapshot_every, est, rng)
            rec = runner.run(exp['chaos'], outdir['chaos'], osp.join(logs, 'chaos_{:02d}.log'.format(k + 1)),
                             plan=plan, rng=rng, write_min=write_min)
            rec['plan'] = plan
            rec['start_newest'] = newest
            rows.append(rec)
            if not rec['killed'] and rec['rc'] != 0:
                raise RunFailed('chaos run {} failed by itself (rc {}) after a kill:\n{}'.format(
                    k + 1, rec['rc'], log_tail(rec['log'])))
            if not rec['killed']:  # finished before its kill: the rest cannot land
                print('chaos run {} finished before its kill; stopping the kills'.format(k + 1), flush=True)
                break
            print('kill {}: {} at {:.2f} s, after iteration {}, {}, newest snapshot {}'.format(
                k + 1, mode, rec['moment'], rec['last_iter'],
                'during a snapshot write' if rec['during_write'] else 'no write under way', rec['newest']),
                flush=True)

        # to the end
        final = runner.run(exp['chaos'], outdir['chaos'], osp.join(logs, 'chaos_final.log'))
        if final['rc'] != 0:
            raise RunFailed('the final chaos run failed (rc {}):\n{}'.format(final['rc'], log_tail(final['log'])))
    except (GlobalTimeout, RunFailed) as e:
        print('chaos: ABORTED: {}'.format(e), flush=True)
        status = 2

    # the table
    print()
    print('{:>4} {:<8} {:>7} {:>9} {:>9} {:>6} {:>7} {:>7} {:>10}  {}'.format(
        'kill', 'mode', 'target', 'moment_s', 'from_snap', 'at_it', 'writing', 'newest', 'loadable', 'temps on disk'))
    for k, r in enumerate(rows):
        p = r['plan']
        target = p.get('target', '-') if p['mode'] != 'startup' else '{:.1f}s'.format(p['delay'])
        print('{:>4} {:<8} {:>7} {:>9} {:>9} {:>6} {:>7} {:>7} {:>10}  {}'.format(
            k + 1, p['mode'], target, '{:.2f}'.format(r['moment']) if r['killed'] else 'no kill',
            r['start_newest'], '-' if r['last_iter'] is None else r['last_iter'],
            'yes' if r['during_write'] else 'no', r['newest'],
            {True: 'yes', False: 'NO', None: '-'}[r['newest_loadable']], ', '.join(r['temps_on_disk']) or '-'))

    # the comparison
    kills = sum(1 for r in rows if r['killed'])
    during = sum(1 for r in rows if r['during_write'])
    ref_snaps, chaos_snaps = snapshots(outdir['ref']), snapshots(outdir['chaos'])
    identical = False
    if status == 0:
        if args.iters in ref_snaps and args.iters in chaos_snaps:
            identical, key = same_weights(ref_snaps[args.iters], chaos_snaps[args.iters])
            if not identical:
                print('final snapshots differ (first tensor: {})'.format(key))
        else:
            print('missing final snapshot (iteration {}): ref {}, chaos {}'.format(
                args.iters, sorted(ref_snaps), sorted(chaos_snaps)))
        common = sorted(set(ref_snaps) & set(chaos_snaps))
        first_diff = None
        for it in common:
            ok, key = same_weights(ref_snaps[it], chaos_snaps[it])
            if not ok:
                first_diff = (it, key)
                break
        print('snapshots compared at {} iterations ({}): {}'.format(
            len(common), ','.join(map(str, common)),
            'all identical' if first_diff is None else 'first differing at iteration {} ({})'.format(*first_diff)))
    files = list_files(outdir['chaos']) if osp.isdir(outdir['chaos']) else []
    temps = [f for f in files if kind_of(osp.basename(f)) == 'temp']
    locks = [f for f in files if kind_of(osp.basename(f)) == 'lock']
    others = [f for f in files if kind_of(osp.basename(f)) == 'other']
    if temps:
        print('temp files left in {}: {}'.format(outdir['chaos'], ', '.join(temps)))
    if locks or others:
        print('other files there: {}'.format(', '.join(locks + others)))
    report = {'args': vars(args), 'rows': rows, 'identical': identical, 'temps_left': temps, 'locks': locks,
              'others': others, 'seconds': time.monotonic() - t_start, 'status': status}
    with open(osp.join(work, 'chaos_report.json'), 'w') as f:
        json.dump(report, f, indent=1, default=str)
    print('chaos: {} kills ({} during snapshot writes), final weights identical: {}, temp files left: {}'.format(
        kills, during, 'yes' if identical else 'no', len(temps)))
    print('({:.0f} s; logs in {})'.format(time.monotonic() - t_start, logs), flush=True)
    if status:
        return status
    if identical and not temps:
        if args.clean:
            for d in outdir.values():
                shutil.rmtree(d, ignore_errors=True)
        return 0
    return 1


if __name__ == '__main__':
    sys.exit(main())
