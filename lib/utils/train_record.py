"""The record a training run leaves beside its snapshots (process 0 only):

- ``config.yml``: the full cfg and solver the run trained with (rewritten at each start, atomically).
- ``train_log.jsonl``: one JSON object per display line, ``{"iteration": int, "loss": float, "losses": {name:
  float}, "lr": float, "s_per_iter": float, "time": unix float}``, appended and flushed; on resume the lines past
  the resumed iteration are dropped (``TrainRecord.start``), so the log is that of the weights being trained.
- ``loss.png``: each smoothed loss against the iteration, redrawn at each snapshot (atomically).
- ``log.txt``: a copy of what the run printed (``StdoutTee``).
- TensorBoard event files under ``tensorboard/`` when the ``tensorboard`` package is installed (never required).
"""
from __future__ import annotations

import io
import json
import os
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, TextIO

import yaml

from utils.atomic import atomic_write

LOG_NAME = 'train_log.jsonl'
CONFIG_NAME = 'config.yml'
PLOT_NAME = 'loss.png'
TEXT_LOG_NAME = 'log.txt'


class StdoutTee(io.TextIOBase):
    """A stand-in for ``sys.stdout`` that also appends every line to a file (``log.txt``).

    Until ``attach(path)`` is called the text is kept in memory, so that the lines printed before the output folder
    is known (the command line, the config) reach the file too."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.file: Optional[TextIO] = None
        self.path: Optional[str] = None
        self._pending: List[str] = []

    def attach(self, path: str) -> None:
        """Append from now on to ``path`` (str), starting with what was printed so far."""
        if self.file is not None:
            return
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        self.file = open(path, 'a', encoding='utf-8')
        self.path = path
        self.file.write(''.join(self._pending))
        self.file.flush()
        self._pending = []

    def write(self, s: str) -> int:
        n = self.stream.write(s)
        if self.file is not None:
            self.file.write(s)
        else:
            self._pending.append(s)
        return n if n is not None else len(s)

    def flush(self) -> None:
        self.stream.flush()
        if self.file is not None:
            self.file.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, 'encoding', 'utf-8')

    def close_file(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def install_tee() -> StdoutTee:
    """sys.stdout wrapped in a StdoutTee (the existing one when it already is); returns it."""
    if not isinstance(sys.stdout, StdoutTee):
        sys.stdout = StdoutTee(sys.stdout)
    return sys.stdout  # type: ignore[return-value]


def read_log(path: str) -> List[Dict[str, Any]]:
    """The objects of a train_log.jsonl (a line cut short by a kill is skipped)."""
    out = []
    if not osp.isfile(path):
        return out
    with open(path, encoding='utf-8') as f:
        for line in f:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out


class TrainRecord:
    """Writes config.yml, train_log.jsonl, loss.png and TensorBoard events into ``output_dir`` (str); a record
    with ``enabled`` False (processes other than 0) writes nothing."""

    def __init__(self, output_dir: str, enabled: bool = True) -> None:
        self.output_dir = output_dir
        self.enabled = bool(enabled)
        self.log_path = osp.join(output_dir, LOG_NAME)
        self._log: Optional[TextIO] = None
        self._tb: Any = None

    def start(self, cfg_dict: Dict[str, Any], solver: Dict[str, Any], iteration: int) -> None:
        """Write config.yml (cfg_dict, solver: plain dicts) and drop the log lines past ``iteration`` (int), the one
        the run starts from (0: a fresh run keeps no line)."""
        if not self.enabled:
            return
        os.makedirs(self.output_dir, exist_ok=True)
        text = yaml.safe_dump({'cfg': _yaml_safe(cfg_dict), 'solver': _yaml_safe(solver)}, default_flow_style=None,
                              sort_keys=True)
        atomic_write(osp.join(self.output_dir, CONFIG_NAME), lambda f: f.write(text.encode('utf-8')))
        kept = [o for o in read_log(self.log_path) if int(o.get('iteration', 0)) <= int(iteration)]
        body = ''.join(json.dumps(o, sort_keys=True) + '\n' for o in kept)
        atomic_write(self.log_path, lambda f: f.write(body.encode('utf-8')))
        self._log = open(self.log_path, 'a', encoding='utf-8')
        try:  # optional: only when the tensorboard package is installed
            from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(osp.join(self.output_dir, 'tensorboard'), purge_step=int(iteration) + 1)
        except Exception:  # noqa: BLE001 - ImportError without tensorboard; never a reason to stop training
            self._tb = None

    def log(self, entry: Dict[str, Any]) -> None:
        """Append one object (``iteration`` and values) to train_log.jsonl, flushed; also to TensorBoard."""
        if not self.enabled or self._log is None:
            return
        self._log.write(json.dumps(entry, sort_keys=True) + '\n')
        self._log.flush()
        if self._tb is not None:
            it = int(entry['iteration'])
            for k, v in entry.items():
                if k in ('iteration', 'time'):
                    continue
                if isinstance(v, dict):
                    for name, x in v.items():
                        self._tb.add_scalar('losses/{}'.format(name), float(x), it)
                elif isinstance(v, (int, float)):
                    self._tb.add_scalar(k, float(v), it)
            self._tb.flush()

    def plot(self) -> Optional[str]:
        """Redraw loss.png from train_log.jsonl (atomically); returns its path, None when there is nothing to draw
        or no drawing library."""
        if not self.enabled:
            return None
        series = loss_series(read_log(self.log_path))
        if not series:
            return None
        png = draw_losses(series, osp.basename(osp.normpath(self.output_dir)))
        if png is None:
            return None
        path = osp.join(self.output_dir, PLOT_NAME)
        atomic_write(path, lambda f: f.write(png))
        return path

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def loss_series(entries: List[Dict[str, Any]]) -> Dict[str, List[List[float]]]:
    """{'loss': [[iteration, value], ...], '<each loss>': [...]} from train_log objects (those with a loss)."""
    series: Dict[str, List[List[float]]] = {}
    for o in entries:
        if 'loss' not in o:
            continue
        it = int(o['iteration'])
        series.setdefault('loss', []).append([it, float(o['loss'])])
        for k, v in (o.get('losses') or {}).items():
            series.setdefault(k, []).append([it, float(v)])
    return series


def draw_losses(series: Dict[str, List[List[float]]], title: str) -> Optional[bytes]:
    """PNG bytes of each series (name -> [[iteration, value], ...]) against the iteration: utils.plots's drawing
    when there is one, else matplotlib (Agg); None without either."""
    try:
        from utils import plots  # type: ignore[attr-defined]
        fn = getattr(plots, 'draw_losses', None)
    except Exception:  # noqa: BLE001 - optional module
        fn = None
    if fn is not None:
        try:
            return fn(series, title)
        except Exception:  # noqa: BLE001 - a drawing must never stop training; fall back to our own
            pass
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except Exception:  # noqa: BLE001 - no matplotlib: no plot
        return None
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    try:
        for name, pts in series.items():
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, linewidth=2 if name == 'loss' else 1)
        ax.set_xlabel('iteration')
        ax.set_ylabel('loss (smoothed)')
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        buf = io.BytesIO()
        fig.savefig(buf, format='png')
        return buf.getvalue()
    finally:
        plt.close(fig)


def _yaml_safe(v: Any) -> Any:
    """Tuples -> lists, tensors/numpy -> lists or numbers, so that yaml.safe_dump can write it."""
    if isinstance(v, dict):
        return {str(k): _yaml_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_yaml_safe(x) for x in v]
    if hasattr(v, 'tolist'):
        return _yaml_safe(v.tolist())
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)
