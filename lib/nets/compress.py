"""Truncated SVD of the fc6/fc7 layers (the original's tools/compress_net.py; Girshick, Fast R-CNN, ICCV 2015 §3.1).

A fully connected layer y = W x + b, W (out, in), is replaced by two: x -> (S_l V_l^T) x (no bias), then
-> U_l (.) + b, with W = U S V^T and the l largest singular values kept: out * in weights become l * (in + out).
The original named the two layers fc6_L and fc6_U; here they are ``head.fc6.L`` and ``head.fc6.U``.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import torch
from torch import nn

#: The head layers compress_net factors, in FC_SVD_RANKS order.
SVD_LAYERS = ('fc6', 'fc7')


class SVDLinear(nn.Module):
    """fc_L (in -> rank, no bias) then fc_U (rank -> out, with the original layer's bias)."""

    def __init__(self, in_features: int, out_features: int, rank: int) -> None:
        super().__init__()
        if not 1 <= rank <= min(in_features, out_features):
            raise ValueError('SVD rank {} must be in [1, {}] for a {} -> {} layer'.format(
                rank, min(in_features, out_features), in_features, out_features))
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.L = nn.Linear(in_features, rank, bias=False)
        self.U = nn.Linear(rank, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.U(self.L(x))


def svd_factors(weight: torch.Tensor, rank: int) -> Tuple[torch.Tensor, torch.Tensor, float]:
    """weight (out, in) -> (L (rank, in) = S_l V_l^T, U (out, rank) = U_l, the fraction of sum(s^2) kept), in
    weight's dtype (the SVD itself in float64)."""
    out_f, in_f = weight.shape
    if not 1 <= rank <= min(in_f, out_f):
        raise ValueError('SVD rank {} must be in [1, {}] for a {} -> {} layer'.format(rank, min(in_f, out_f),
                                                                                     in_f, out_f))
    u, s, vh = torch.linalg.svd(weight.detach().double().cpu(), full_matrices=False)
    energy = float((s[:rank] ** 2).sum() / (s ** 2).sum()) if float(s.abs().sum()) > 0 else 1.0
    return (s[:rank, None] * vh[:rank]).to(weight.dtype), u[:, :rank].contiguous().to(weight.dtype), energy


def factor_linear(layer: nn.Linear, rank: int) -> SVDLinear:
    """The rank-``rank`` truncated SVD of ``layer`` as an SVDLinear."""
    L, U, _ = svd_factors(layer.weight, rank)
    out = SVDLinear(layer.in_features, layer.out_features, rank)
    with torch.no_grad():
        out.L.weight.copy_(L)
        out.U.weight.copy_(U)
        out.U.bias.copy_(layer.bias.detach().cpu())
    return out.to(layer.weight.device)


def factor_state(state: Dict[str, torch.Tensor], ranks: Sequence[int],
                 prefix: str = 'head.') -> Tuple[Dict[str, torch.Tensor], Dict[str, float]]:
    """A model state dict with ``<prefix>fc6``/``fc7`` replaced by their truncated SVD factors (the keys of a
    head built with FC_SVD_RANKS = ranks), and the fraction of each layer's sum(s^2) kept."""
    out, energy = dict(state), {}
    for name, rank in _ranks(ranks).items():
        w_key, b_key = prefix + name + '.weight', prefix + name + '.bias'
        if w_key not in state:
            raise ValueError('no {} in the weights: already factored, or not a network with {}'.format(w_key, name))
        L, U, energy[name] = svd_factors(state[w_key], rank)
        del out[w_key], out[b_key]
        out[prefix + name + '.L.weight'] = L
        out[prefix + name + '.U.weight'] = U
        out[prefix + name + '.U.bias'] = state[b_key]
    return out, energy


def _ranks(ranks: Sequence[int]) -> Dict[str, int]:
    ranks = tuple(int(r) for r in ranks)
    if len(ranks) not in (0, len(SVD_LAYERS)):
        raise ValueError('FC_SVD_RANKS: expected () or a rank for each of {} (0: not factored), got {}'.format(
            ', '.join(SVD_LAYERS), ranks))
    return {name: r for name, r in zip(SVD_LAYERS, ranks) if r > 0}


def shape_head(head: nn.Module, ranks: Sequence[int]) -> None:
    """Give ``head`` the layer shapes of a factored head (weights to be loaded from a compressed snapshot)."""
    for name, rank in _ranks(ranks).items():
        layer = getattr(head, name)
        setattr(head, name, SVDLinear(layer.in_features, layer.out_features, rank))


def head_parameter_count(head: nn.Module) -> Tuple[int, int]:
    """(fc6 parameters, fc7 parameters) of ``head``, factored or not."""
    return tuple(sum(p.numel() for p in getattr(head, n).parameters()) for n in SVD_LAYERS)  # type: ignore
