"""Caffe's solvers, as the original's models/*/solver.prototxt and Caffe's C++ made them.

- ``load_solver(path)``: a models/<dataset>/<NET>/<method>/solver.yml as a dict (Caffe solver keys plus ``net``,
  ``frozen_layers``, warm-up and the ``cfg:`` block), every value checked for type and range.
- ``learning_rate(solver, it)``: Caffe's lr_policy (fixed, step, multistep, poly) with the opt-in warm-up.
- ``CaffeSGD``: Caffe's SGD: diff /= iter_size; diff += weight_decay * decay_mult * w; history = momentum * history
  + lr * lr_mult * diff; w -= history. Weights lr_mult 1, biases lr_mult 2, decay_mult 1 on both (Caffe's
  defaults in the original prototxts), frozen layers not updated.
- ``CaffeAdam``: Caffe's Adam (solver ``type: Adam``), with the same lr_mult / decay_mult / iter_size handling.
"""
from __future__ import annotations

import math
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import yaml


SOLVER_DEFAULTS: Dict[str, Any] = {
    'net': None,
    'type': 'SGD',              # Caffe's solver type: SGD (the original's) or Adam
    'base_lr': 0.001,
    'lr_policy': 'step',
    'gamma': 0.1,
    'stepsize': 50000,
    'stepvalues': None,
    'momentum': 0.9,
    'momentum2': 0.999,         # Adam's second-moment decay (Caffe's momentum2)
    'delta': 1e-8,              # Adam's epsilon (Caffe's delta)
    'power': 1.0,               # lr_policy poly: base_lr * (1 - iter / max_iter) ** power
    'weight_decay': 0.0005,
    'max_iter': 70000,
    'iter_size': 1,
    'display': 20,
    'average_loss': 100,
    'snapshot_prefix': None,
    'snapshot': None,           # -> cfg.TRAIN.SNAPSHOT_ITERS when given
    'frozen_layers': None,      # None: the network's own (the original's) frozen layers
    'warmup_iters': 0,          # opt-in linear warm-up (not in the original)
    'warmup_factor': 1.0 / 3,
    'clip_gradients': -1.0,     # Caffe's clip_gradients (global L2 norm), off by default
    'bias_lr_mult': 2.0,
    'bias_decay_mult': 1.0,
    'norm_decay_mult': 0.0,     # GroupNorm affine parameters (TINY only; the original nets have none)
    'from_scratch': None,       # None: the network's own choice
    'cfg': None,
}


class SolverError(ValueError):
    """A solver.yml that cannot be used."""


def load_solver(path: str) -> Dict[str, Any]:
    """Read a solver.yml: Caffe solver keys (see SOLVER_DEFAULTS) plus ``net`` and a ``cfg:`` block.

    Unknown keys are an error naming the file and the key."""
    if not osp.isfile(path):
        raise SolverError('solver file not found: {}'.format(path))
    with open(path) as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise SolverError('{}: not valid YAML: {}'.format(path, e)) from None
    if not isinstance(data, dict):
        raise SolverError('{}: expected a mapping of solver keys'.format(path))
    unknown = sorted(set(data) - set(SOLVER_DEFAULTS))
    if unknown:
        raise SolverError('{}: unknown solver key(s): {} (known: {})'.format(
            path, ', '.join(unknown), ', '.join(sorted(SOLVER_DEFAULTS))))
    solver = dict(SOLVER_DEFAULTS)
    solver.update(data)
    for key, value in data.items():
        solver[key] = _check_solver_value(path, key, value)
    if not solver['net']:
        raise SolverError('{}: the solver must name its network (net: VGG16, ZF, VGG_CNN_M_1024 or TINY)'.format(path))
    if not solver['snapshot_prefix']:
        solver['snapshot_prefix'] = '{}_faster_rcnn'.format(str(solver['net']).lower())
    if solver['lr_policy'] not in ('step', 'multistep', 'fixed', 'poly'):
        raise SolverError('{}: lr_policy {!r} is not supported (step, multistep, fixed, poly)'.format(
            path, solver['lr_policy']))
    if solver['type'] not in SOLVER_TYPES:
        raise SolverError('{}: solver type {!r} is not supported ({})'.format(
            path, solver['type'], ', '.join(SOLVER_TYPES)))
    if solver['cfg'] is not None and not isinstance(solver['cfg'], dict):
        raise SolverError('{}: the cfg: block must be a mapping of config keys'.format(path))
    solver['path'] = osp.abspath(path)
    return solver


# Type and range of each solver key: (kind, low, high) with kind 'float' (finite), 'int', 'str', 'bool', 'list';
# low/high inclusive (None: unbounded). A key absent here takes any value of its kind.
_SOLVER_RULES: Dict[str, Tuple[str, Optional[float], Optional[float]]] = {
    'net': ('str', None, None), 'type': ('str', None, None), 'lr_policy': ('str', None, None),
    'base_lr': ('float', 1e-12, 1.0),          # above 1 every one of these networks diverges at once
    'gamma': ('float', 1e-12, 1.0), 'stepsize': ('int', 1, None), 'stepvalues': ('list', 0, None),
    'momentum': ('float', 0.0, 0.999999), 'momentum2': ('float', 0.0, 0.999999), 'delta': ('float', 1e-300, 1.0),
    'power': ('float', 0.0, 100.0), 'weight_decay': ('float', 0.0, 0.1), 'max_iter': ('int', 1, None),
    'iter_size': ('int', 1, None), 'display': ('int', 0, None), 'average_loss': ('int', 1, None),
    'snapshot_prefix': ('str', None, None), 'snapshot': ('int', 0, None), 'frozen_layers': ('list', None, None),
    'warmup_iters': ('int', 0, None), 'warmup_factor': ('float', 1e-12, 1.0),
    'clip_gradients': ('float', None, None), 'bias_lr_mult': ('float', 0.0, 100.0),
    'bias_decay_mult': ('float', 0.0, 100.0), 'norm_decay_mult': ('float', 0.0, 100.0),
    'from_scratch': ('bool', None, None),
}


def _check_solver_value(path: str, key: str, value: Any) -> Any:
    """``value`` of solver key ``key`` checked for type, finiteness and range (None stays None: the default)."""
    rule = _SOLVER_RULES.get(key)
    if rule is None or value is None:
        return value
    kind, lo, hi = rule

    def bad(what: str) -> SolverError:
        rng = '' if lo is None and hi is None else ' (allowed: [{}, {}])'.format(
            '-inf' if lo is None else lo, 'inf' if hi is None else hi)
        return SolverError('{}: solver key {}: {}, got {!r}{}'.format(path, key, what, value, rng))

    def number(v: Any, integer: bool) -> Any:
        if isinstance(v, bool):
            raise bad('expected a number')
        if isinstance(v, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                v = float(v)
            except ValueError:
                raise bad('expected a number') from None
        if not isinstance(v, (int, float)):
            raise bad('expected a number')
        if not math.isfinite(v):
            raise bad('must be finite')
        if integer:
            if float(v) != int(v):
                raise bad('expected an integer')
            v = int(v)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise bad('out of range')
        return v

    if kind in ('float', 'int'):
        return number(value, kind == 'int')
    if kind == 'str':
        if not isinstance(value, str):
            raise bad('expected a string')
        if key == 'snapshot_prefix' and (not value or '/' in value or '\\' in value or value in ('.', '..')):
            raise bad('must be a file name (no path separators)')
        return value
    if kind == 'bool':
        if not isinstance(value, bool):
            raise bad('expected true or false')
        return value
    if not isinstance(value, (list, tuple)):
        raise bad('expected a list')
    if key == 'stepvalues':
        vals = [number(v, True) for v in value]
        if vals != sorted(vals):
            raise bad('must be increasing')
        return vals
    if not all(isinstance(v, str) for v in value):
        raise bad('expected a list of layer names')
    return list(value)


def learning_rate(solver: Dict[str, Any], it: int) -> float:
    """The learning rate of iteration ``it`` (0-based), as Caffe's lr policies, times the opt-in warm-up."""
    base = float(solver['base_lr'])
    policy = solver['lr_policy']
    if policy == 'fixed':
        lr = base
    elif policy == 'poly':  # Caffe: relative to the solver's max_iter, whatever --iters says
        lr = base * max(0.0, 1.0 - float(it) / int(solver['max_iter'])) ** float(solver['power'])
    elif policy == 'step':
        lr = base * float(solver['gamma']) ** (it // int(solver['stepsize']))
    else:
        steps = sum(1 for s in (solver['stepvalues'] or []) if it >= int(s))
        lr = base * float(solver['gamma']) ** steps
    warm = int(solver.get('warmup_iters') or 0)
    if warm > 0 and it < warm:
        f = float(solver['warmup_factor'])
        lr *= f + (1.0 - f) * it / warm
    return lr


class CaffeSGD:
    """Caffe's SGDSolver update over (param, lr_mult, decay_mult) triples.

    The update runs as multi-tensor (``torch._foreach_*``) operations over the parameters that share an
    (lr_mult, decay_mult) pair: a handful of calls an iteration instead of ~10 per parameter tensor.
    """

    type = 'SGD'

    def __init__(self, groups: Sequence[Tuple[str, torch.nn.Parameter, float, float]], momentum: float,
                 weight_decay: float) -> None:
        self.groups = [g for g in groups if g[2] != 0.0 or g[3] != 0.0]
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.history = [torch.zeros_like(p, memory_format=torch.preserve_format) for _, p, _, _ in self.groups]
        # indices of the parameters of each (lr_mult, decay_mult) pair, in order of first appearance
        self._mults: Dict[Tuple[float, float], List[int]] = {}
        for i, (_, _, lr_mult, decay_mult) in enumerate(self.groups):
            self._mults.setdefault((float(lr_mult), float(decay_mult)), []).append(i)

    def _scaled_grads(self, iter_size: int, clip_gradients: float, grad_scale: float = 1.0) -> List[torch.Tensor]:
        """The gradients after Caffe's ClipGradients (the summed gradients scaled down together to global L2 norm
        ``clip_gradients`` when above it) and Normalize (/ iter_size), scaled in place in one pass. ``grad_scale``:
        the factor that makes the stored gradients the true ones (1 / the loss scale of float16 training)."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for _, p, _, _ in self.groups]
        scale = grad_scale / iter_size
        if clip_gradients > 0 and grads:
            norm = float(torch.stack(torch._foreach_norm(grads)).double().norm()) * grad_scale
            if norm > clip_gradients:
                scale *= clip_gradients / norm
        if scale != 1.0:
            torch._foreach_mul_(grads, scale)
        return grads

    @torch.no_grad()
    def step(self, lr: float, iter_size: int = 1, clip_gradients: float = -1.0, grad_scale: float = 1.0) -> None:
        grads = self._scaled_grads(iter_size, clip_gradients, grad_scale)
        for (lr_mult, decay_mult), idx in self._mults.items():
            params = [self.groups[i][1] for i in idx]
            diffs = [grads[i] for i in idx]
            if self.weight_decay * decay_mult != 0.0:  # Caffe's Regularize: diff += decay * w
                torch._foreach_add_(diffs, params, alpha=self.weight_decay * decay_mult)
            hist = [self.history[i] for i in idx]
            torch._foreach_mul_(hist, self.momentum)
            torch._foreach_add_(hist, diffs, alpha=lr * lr_mult)
            torch._foreach_sub_(params, hist)

    def grads_finite(self) -> bool:
        """Whether every gradient is finite (one device-to-host copy)."""
        grads = [p.grad for _, p, _, _ in self.groups if p.grad is not None]
        return not grads or bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all())

    def zero_grad(self) -> None:
        for _, p, _, _ in self.groups:
            p.grad = None

    def state_dict(self) -> Dict[str, Any]:
        return {'type': self.type, 'names': [n for n, _, _, _ in self.groups],
                'history': [h.detach().cpu().clone() for h in self.history]}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        saved = state.get('type', 'SGD')
        if saved != self.type:
            raise ValueError('optimizer state is that of a {} solver, this solver is {}: resume with the solver type '
                             'it was trained with'.format(saved, self.type))
        names = [n for n, _, _, _ in self.groups]
        if list(state['names']) != names:
            raise ValueError('optimizer state does not match the network (parameters {} vs {})'.format(
                len(state['names']), len(names)))
        for h, s in zip(self.history, state['history']):
            h.copy_(s.to(h.device))


class CaffeAdam(CaffeSGD):
    """Caffe's AdamSolver (Kingma & Ba) over (param, lr_mult, decay_mult) triples.

    diff /= iter_size; diff += weight_decay * decay_mult * w; m = b1 m + (1 - b1) diff; v = b2 v + (1 - b2) diff^2;
    w -= lr * lr_mult * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + delta), t = 1, 2, ... (b1 = momentum,
    b2 = momentum2). ``history`` holds m, ``history2`` v.
    """

    type = 'Adam'

    def __init__(self, groups: Sequence[Tuple[str, torch.nn.Parameter, float, float]], momentum: float,
                 weight_decay: float, momentum2: float = 0.999, delta: float = 1e-8) -> None:
        super().__init__(groups, momentum, weight_decay)
        self.momentum2 = float(momentum2)
        self.delta = float(delta)
        self.history2 = [torch.zeros_like(p, memory_format=torch.preserve_format) for _, p, _, _ in self.groups]
        self.t = 0

    @torch.no_grad()
    def step(self, lr: float, iter_size: int = 1, clip_gradients: float = -1.0, grad_scale: float = 1.0) -> None:
        grads = self._scaled_grads(iter_size, clip_gradients, grad_scale)
        self.t += 1
        # torch's fused Adam kernel (one pass over each tensor) computes
        #   w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps),
        # Caffe's update with eps = delta / sqrt(1 - b2^t); weight decay is added to the gradient in both.
        step = [torch.tensor(float(self.t), device=self.history[0].device)] if self.groups else []
        eps = self.delta / math.sqrt(1.0 - self.momentum2 ** self.t)
        for (lr_mult, decay_mult), idx in self._mults.items():
            torch._fused_adam_([self.groups[i][1] for i in idx], [grads[i] for i in idx],
                               [self.history[i] for i in idx], [self.history2[i] for i in idx], [],
                               step * len(idx), lr=lr * lr_mult, beta1=self.momentum, beta2=self.momentum2,
                               weight_decay=self.weight_decay * decay_mult, eps=eps, amsgrad=False,
                               maximize=False)

    def state_dict(self) -> Dict[str, Any]:
        out = super().state_dict()
        out['history2'] = [h.detach().cpu().clone() for h in self.history2]
        out['t'] = self.t
        return out

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        for h, s in zip(self.history2, state['history2']):
            h.copy_(s.to(h.device))
        self.t = int(state['t'])


SOLVER_TYPES = ('SGD', 'Adam')


class LossScale:
    """Dynamic loss scaling for float16 autocast (cfg.AMP 'fp16'), as torch.amp.GradScaler does it, for our Caffe
    solvers: the loss is multiplied by ``scale`` before backward so that small float16 gradients do not flush to
    zero; the step divides it out (``grad_scale``). An iteration whose gradients overflow is skipped (the weights stay
    as they are, the iteration counts) and halves the scale; ``growth_interval`` good iterations in a row double it.
    Disabled (bfloat16, float32): scale 1 and every step taken."""

    def __init__(self, enabled: bool, init_scale: float = 2.0 ** 16, growth_interval: int = 2000) -> None:
        self.enabled = bool(enabled)
        self.scale = float(init_scale) if self.enabled else 1.0
        self.growth_interval = int(growth_interval)
        self.good_steps = 0

    def update(self, grads_finite: bool) -> bool:
        """After an iteration's backward passes: whether to take the step; adjusts the scale."""
        if not self.enabled:
            return True
        if not grads_finite:
            self.scale /= 2.0
            self.good_steps = 0
            return False
        self.good_steps += 1
        if self.good_steps >= self.growth_interval:
            self.scale *= 2.0
            self.good_steps = 0
        return True

    def state_dict(self) -> Dict[str, Any]:
        return {'enabled': self.enabled, 'scale': self.scale, 'good_steps': self.good_steps}

    def load_state_dict(self, state: Optional[Dict[str, Any]]) -> None:
        if self.enabled and state and state.get('enabled'):
            self.scale = float(state['scale'])
            self.good_steps = int(state['good_steps'])


def make_optimizer(model: torch.nn.Module, solver: Dict[str, Any]) -> CaffeSGD:
    """The solver's ``type`` (Caffe's SGD or Adam; load_solver checked it) over ``param_groups(model, solver)``."""
    groups = param_groups(model, solver)
    if solver.get('type', 'SGD') == 'Adam':
        return CaffeAdam(groups, solver['momentum'], solver['weight_decay'], solver['momentum2'], solver['delta'])
    return CaffeSGD(groups, solver['momentum'], solver['weight_decay'])


def param_groups(model: torch.nn.Module, solver: Dict[str, Any]) -> List[Tuple[str, torch.nn.Parameter, float, float]]:
    """(name, param, lr_mult, decay_mult) for every trainable parameter: weights (1, 1), biases
    (bias_lr_mult, bias_decay_mult), normalisation-layer affine parameters (1, norm_decay_mult)."""
    norm_params = set()
    for m in model.modules():
        if isinstance(m, (torch.nn.GroupNorm, torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
            norm_params.update(id(p) for p in m.parameters(recurse=False))
    groups = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in norm_params:
            groups.append((name, p, 1.0, float(solver['norm_decay_mult'])))
        elif name.endswith('bias'):
            groups.append((name, p, float(solver['bias_lr_mult']), float(solver['bias_decay_mult'])))
        else:
            groups.append((name, p, 1.0, 1.0))
    return groups
