"""Training logs read back, and the pictures drawn from them and from an evaluation (headless: matplotlib Agg).

- ``parse_log(path) -> dict``: one training log, in any of the forms met:
  * train_net's display lines, with or without a ``[YYYY-MM-DD HH:MM:SS] `` prefix:
    ``Iteration 20, loss = 1.2345 (rpn_loss_cls = 0.1, rpn_loss_bbox = ..., ...), lr = 0.001, 0.123 s/iter, ...``;
  * train_net's ``train_log.jsonl``: one JSON object a line, ``{"iteration", "loss", "losses": {name: value},
    "lr", "s_per_iter", "time"}`` or ``{"iteration", "val_map"}``;
  * the original's Caffe logs: ``... solver.cpp:228] Iteration 20, loss = 1.234`` followed by
    ``... solver.cpp:244]     Train net output #0: loss_bbox = 0.1 (* 1 = 0.1 loss)`` lines (each output's own
    value, before its loss weight) and ``... Iteration 20, lr = 0.001``. The original's ``rpn_cls_loss`` is named
    ``rpn_loss_cls`` here, as this project names it, so that old and new runs' curves share a name.
  Lines of any other kind are skipped. Returns ``{'path', 'losses': {name: [(iteration, value), ...]}, 'lr':
  [(iteration, lr)], 'val_map': [(iteration, mean AP)]}``; ``losses['loss']`` is the total loss. A log holding
  no iteration at all raises ValueError naming the file.
- ``smooth(values, window) -> np.ndarray``: the trailing mean over ``window`` values (fewer at the start).
- ``draw_losses(series, title='', window=None) -> bytes``: a PNG of loss curves against the iteration.
- ``draw_pr_curves(curves, aps, title='') -> bytes``: a PNG of precision/recall curves, each class's AP in the
  legend.
"""
from __future__ import annotations

import io
import json
import math
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

_NUM = r'[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf|NaN|Inf)'
_ITER_LOSS = re.compile(r'Iteration (\d+), loss = (' + _NUM + r')(?: \(([^)]*)\))?(?:, lr = (' + _NUM + r'))?')
_ITER_LR = re.compile(r'Iteration (\d+), lr = (' + _NUM + r')')
_PAIR = re.compile(r'([A-Za-z_][\w.]*) = (' + _NUM + r')')
_CAFFE_OUT = re.compile(r'Train net output #\d+: ([A-Za-z_][\w.]*) = (' + _NUM + r')')
#: the original's output names -> this project's
_CAFFE_NAMES = {'rpn_cls_loss': 'rpn_loss_cls'}


def _add(d: Dict[str, List[Tuple[int, float]]], name: str, it: int, value: Any) -> None:
    d.setdefault(name, []).append((int(it), float(value)))


def parse_log(path: str) -> Dict[str, Any]:
    """One training log (train_net's text or jsonl, or the original's Caffe log): see the module's docstring."""
    losses: Dict[str, List[Tuple[int, float]]] = {}
    lr: List[Tuple[int, float]] = []
    val_map: List[Tuple[int, float]] = []
    current = None  # the iteration of the last 'Iteration N, loss = ...' line, for Caffe's output lines
    with open(path, 'rb') as f:
        text = f.read().decode('utf-8', 'replace')
    for line in text.splitlines():
        s = line.strip()
        if s.startswith('{'):
            try:
                obj = json.loads(s)
            except ValueError:
                obj = None
            if isinstance(obj, dict) and isinstance(obj.get('iteration'), int):
                it = obj['iteration']
                if isinstance(obj.get('loss'), (int, float)):
                    _add(losses, 'loss', it, obj['loss'])
                for name, v in sorted((obj.get('losses') or {}).items()):
                    if isinstance(v, (int, float)):
                        _add(losses, str(name), it, v)
                if isinstance(obj.get('lr'), (int, float)):
                    lr.append((it, float(obj['lr'])))
                if isinstance(obj.get('val_map'), (int, float)):
                    val_map.append((it, float(obj['val_map'])))
                continue
        m = _ITER_LOSS.search(s)
        if m:
            current = int(m.group(1))
            _add(losses, 'loss', current, m.group(2))
            for name, v in _PAIR.findall(m.group(3) or ''):
                _add(losses, name, current, v)
            if m.group(4) is not None:
                lr.append((current, float(m.group(4))))
            continue
        m = _ITER_LR.search(s)
        if m:
            lr.append((int(m.group(1)), float(m.group(2))))
            continue
        m = _CAFFE_OUT.search(s)
        if m and current is not None:
            _add(losses, _CAFFE_NAMES.get(m.group(1), m.group(1)), current, m.group(2))
    if not losses and not val_map:
        raise ValueError('{}: no training iterations found (expected train_net\'s "Iteration N, loss = ..." lines, '
                         'its train_log.jsonl, or a Caffe solver log)'.format(path))
    return {'path': path, 'losses': losses, 'lr': lr, 'val_map': val_map}


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """out[i] = mean(values[max(0, i - window + 1) : i + 1]): the trailing mean (a shorter one at the start)."""
    v = np.asarray(values, dtype=np.float64)
    window = max(1, int(window))
    if v.size == 0:
        return v
    c = np.concatenate(([0.0], np.cumsum(v)))
    i = np.arange(v.size)
    lo = np.maximum(0, i - window + 1)
    return (c[i + 1] - c[lo]) / (i + 1 - lo)


def default_window(n: int) -> int:
    """The smoothing window for a curve of n points: about a twentieth of them, 1 to 50."""
    return int(min(50, max(1, n // 20)))


def _figure(width: float = 9.0, height: float = 5.5):
    # a Figure on its own Agg canvas: no pyplot, no global backend chosen, no window (headless, thread-safe)
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format='png', bbox_inches='tight')
    return buf.getvalue()


def draw_losses(series: Mapping[str, Sequence[Tuple[int, float]]], title: str = '', window: Optional[int] = None,
                val_map: Optional[Mapping[str, Sequence[Tuple[int, float]]]] = None) -> bytes:
    """A PNG (bytes) of loss curves: ``series`` maps a legend label to its (iteration, value) points. Each curve is
    drawn faintly as logged and boldly smoothed (``smooth`` over ``window`` points, default ``default_window``);
    non-finite values are left out. Axes 'iteration' and 'loss', a legend and a grid. ``val_map`` (label ->
    (iteration, mean AP) points), when given and not empty, is drawn on a second axis 'validation mean AP' (0..1)."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    import matplotlib
    colours = [c['color'] for c in matplotlib.rcParams['axes.prop_cycle']]
    k = 0
    for label, points in series.items():
        pts = sorted((int(i), float(v)) for i, v in points if math.isfinite(float(v)))
        if not pts:
            continue
        it = np.array([p[0] for p in pts])
        v = np.array([p[1] for p in pts])
        colour = colours[k % len(colours)]
        k += 1
        w = default_window(len(v)) if window is None else window
        if w > 1:
            ax.plot(it, v, color=colour, alpha=0.25, linewidth=0.8)
            ax.plot(it, smooth(v, w), color=colour, linewidth=1.6, label='{} (mean of {})'.format(label, w))
        else:
            ax.plot(it, v, color=colour, linewidth=1.6, label=label)
    ax.set_xlabel('iteration')
    ax.set_ylabel('loss')
    ax.grid(True, alpha=0.4)
    if title:
        ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    if val_map and any(len(p) for p in val_map.values()):
        ax2 = ax.twinx()
        for label, points in val_map.items():
            if not points:
                continue
            pts = sorted((int(i), float(v)) for i, v in points)
            colour = colours[k % len(colours)]
            k += 1
            ax2.plot([p[0] for p in pts], [p[1] for p in pts], 'o--', color=colour, label=label)
        ax2.set_ylabel('validation mean AP')
        ax2.set_ylim(0, 1)
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if handles:
        ax.legend(handles, labels, loc='upper right', fontsize='small')
    return _png(fig)


def draw_pr_curves(curves: Mapping[str, Tuple[Sequence[float], Sequence[float]]], aps: Mapping[str, float],
                   title: str = '') -> bytes:
    """A PNG (bytes) of each class's precision/recall curve: ``curves`` maps a class to (recall, precision) arrays,
    ``aps`` a class to its AP (in the legend as 'class (AP 0.xxxx)'). Axes 'recall' and 'precision', both 0..1."""
    fig = _figure(7.5, 6.0)
    ax = fig.add_subplot(1, 1, 1)
    for cls, (rec, prec) in curves.items():
        rec = np.asarray(rec, dtype=np.float64)
        prec = np.asarray(prec, dtype=np.float64)
        label = '{} (AP {:.4f})'.format(cls, float(aps.get(cls, float('nan'))))
        if rec.size:  # points marked on short curves; drawn over the axes' edges (recall or precision 1)
            ax.plot(rec, prec, linewidth=1.5, label=label, marker='o' if rec.size <= 30 else None, markersize=4,
                    clip_on=False)
        else:  # no detections: nothing to draw, but the class and its AP are listed
            ax.plot([], [], linewidth=1.5, label=label)
    ax.set_xlabel('recall')
    ax.set_ylabel('precision')
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(True, alpha=0.4)
    if title:
        ax.set_title(title)
    if curves:
        ax.legend(loc='lower left', fontsize='small')
    return _png(fig)
