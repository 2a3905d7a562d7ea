"""Calibrated merge: fold each adapter branch into its base weight as the linear map that best reproduces
the branch on calibration activations. For AuroRA, whose branch s B sigma(A x) has no exact merge, this is
a data-fitted alternative to the paper's static W0 + s B sigma(A).

Per inexact layer, with X its input tokens (N x d_in) and Y = s g(A X) U^T its branch output (U the
up-projection, zero outside the adapted rows), the delta is the ridge least-squares solution

    dW = argmin ||X dW^T - Y||^2 + lam ||dW||^2 = s U C,   C = argmin ||X C^T - Z||^2 + lam ||C||^2,

Z = g(A X) the branch's (n r)-wide code: fitting the code and multiplying by s U gives exactly the
full solution (the ridge solution is linear in Y), so the solve is (n r) columns wide whatever
out_features is, and the delta keeps the branch's rank and its zero rows. Layers are merged in forward
order, each fitted on the inputs it gets from the model with every earlier layer already merged.
"""
from dataclasses import dataclass
from typing import Callable, Iterable, Union

import torch
from torch import nn

from .layers import AdapterLinear

# lam = DEFAULT_RIDGE x mean diagonal of X^T X (the mean squared feature), so one value suits every layer
# and width. Small enough that the fit stays the least-squares one along every direction the tokens
# span with more than 1/1000 of the average energy; large enough that X^T X stays positive definite
# when the tokens span fewer than d_in directions (few calibration images, constant features).
DEFAULT_RIDGE = 1e-3

Calibration = Union[torch.Tensor, Iterable[torch.Tensor], Callable[[], Iterable[torch.Tensor]]]


class _Reached(Exception):
    """Raised by the hook once the layer being fitted has its input: the rest of the forward is not needed."""


@dataclass
class BranchStats:
    """Sums over calibration tokens, in float64: X^T X (d_in, d_in), X^T Z (d_in, n r), Z^T Z (n r, n r)."""
    xtx: torch.Tensor
    xtz: torch.Tensor
    ztz: torch.Tensor
    tokens: int = 0

    @classmethod
    def empty(cls, d_in: int, width: int, device) -> "BranchStats":
        zeros = lambda *shape: torch.zeros(*shape, dtype=torch.float64, device=device)
        return cls(zeros(d_in, d_in), zeros(d_in, width), zeros(width, width))

    def add(self, x: torch.Tensor, z: torch.Tensor) -> None:
        x, z = x.double(), z.double()
        self.xtx += x.T @ x
        self.xtz += x.T @ z
        self.ztz += z.T @ z
        self.tokens += x.shape[0]


def fit_code(stats: BranchStats, ridge: float = DEFAULT_RIDGE) -> torch.Tensor:
    """C (n r, d_in), float64: the ridge least-squares linear map from the layer input to its branch code."""
    if not (torch.isfinite(stats.xtx).all() and torch.isfinite(stats.xtz).all()):
        raise ValueError(f"calibration inputs hold non-finite values (NaN or inf) at this layer ({stats.tokens} "
                         "tokens): check the calibration batches for NaN/inf pixels (or an earlier layer overflowed)")
    scale = stats.xtx.diagonal().mean()
    if not scale > 0:
        raise ValueError(f"calibration inputs are all zero ({stats.tokens} tokens): nothing to fit a map to")
    gram = stats.xtx + ridge * scale * torch.eye(len(stats.xtx), dtype=stats.xtx.dtype, device=stats.xtx.device)
    chol, info = torch.linalg.cholesky_ex(gram)
    if info.item():
        raise ValueError(f"X^T X + ridge is not positive definite ({stats.tokens} tokens, d_in {len(gram)}, "
                         f"ridge {ridge}): use a ridge > 0 or more calibration images")
    return torch.cholesky_solve(stats.xtz, chol).T


def relative_error(stats: BranchStats, delta: torch.Tensor, up: torch.Tensor) -> float:
    """||X delta^T - Y||^2 / ||Y||^2 on the calibration tokens, Y = Z up^T, from the sums alone."""
    delta, up = delta.double(), up.double()
    target = (up @ stats.ztz * up).sum()
    err = (delta @ stats.xtx * delta).sum() - 2 * (delta @ stats.xtz * up).sum() + target
    return float(err.clamp_min(0) / target) if target > 0 else float("nan")


def _batches(calibration: Calibration, device: torch.device):
    source = calibration() if callable(calibration) else (
        [calibration] if isinstance(calibration, torch.Tensor) else calibration)
    count = 0
    for batch in source:
        if not isinstance(batch, torch.Tensor):
            raise TypeError(f"calibration batches must be input tensors, got {type(batch).__name__}; for (x, y) "
                            "pairs pass calibration=lambda: (x for x, _ in loader)")
        count += 1
        yield batch.to(device)
    if not count:
        raise ValueError("calibration gave no batches")


def _check_replayable(calibration: Calibration) -> None:
    if not callable(calibration) and not isinstance(calibration, torch.Tensor) and iter(calibration) is calibration:
        raise TypeError("calibration is a one-shot iterator, but the merge reads it once per layer: pass a list, "
                        "a tensor, or a callable that returns a fresh iterable of batches")


def forward_order(model: nn.Module, layers: dict, calibration: Calibration) -> list:
    """The (name, layer) pairs of `layers` ({name: layer}) in the order one forward pass calls them."""
    order = []

    def seen(name):
        def hook(module, args):
            if name in order:
                raise ValueError(f"{name} runs more than once per forward pass; the calibrated merge fits "
                                 "layers that run once")
            order.append(name)
        return hook

    handles = [layer.register_forward_pre_hook(seen(name)) for name, layer in layers.items()]
    try:
        model(next(iter(_batches(calibration, _device(model)))))
    finally:
        for h in handles:
            h.remove()
    missing = sorted(set(layers) - set(order))
    if missing:
        raise ValueError(f"adapter layers {missing} did not run on the calibration inputs")
    return [(name, layers[name]) for name in order]


def collect(model: nn.Module, name: str, layer: AdapterLinear, calibration: Calibration) -> BranchStats:
    """The layer's input and branch-code sums over every calibration batch; each forward stops at the layer.
    The code is computed in float32 from the input the model gives the layer (under the caller's autocast)."""
    stats = None

    def hook(module, args):
        nonlocal stats
        x = args[0]
        with torch.autocast(x.device.type, enabled=False):
            x = x.detach().reshape(-1, x.shape[-1]).float()
            z = layer.branch_input(x)
            if stats is None:
                stats = BranchStats.empty(x.shape[-1], z.shape[-1], x.device)
            stats.add(x, z)
        raise _Reached

    handle = layer.register_forward_pre_hook(hook)
    try:
        for batch in _batches(calibration, _device(model)):
            try:
                model(batch)
            except _Reached:
                continue
            raise ValueError(f"adapter layer {name} did not run on a calibration batch")
    finally:
        handle.remove()
    return stats


@torch.no_grad()
def calibrated_merge(model: nn.Module, calibration: Calibration, ridge: float = DEFAULT_RIDGE) -> dict:
    """Merge every adapter layer of `model`: exact ones (LoRA) by their exact delta, the others (AuroRA) by
    the ridge least-squares delta fitted to their branch on the calibration inputs, in forward order.

    Cost: one forward pass over the calibration batches per inexact layer, each stopped at that layer (for
    L layers spread evenly through the depth, about L/2 full passes), plus one batch to find the order.
    The passes run in eval mode under whatever autocast the caller has entered, as the deployed model
    would; the sums and the solve run in float64. On any error every layer merged so far is unmerged.

    Args:
        calibration: input batches (already transformed images): a tensor (one batch), a list of tensors,
            or a callable returning a fresh iterable of them (read once per inexact layer).
        ridge: lam relative to the mean diagonal of X^T X (see DEFAULT_RIDGE).

    Returns:
        {layer name: {'tokens', 'relative_error', 'static_relative_error'}} for each fitted layer: the
        output-space error ||X dW^T - Y||^2 / ||Y||^2 of the fitted delta and of the static one
        (`delta_weight()`) on that layer's calibration tokens.
    """
    if not ridge >= 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    layers = {name: m for name, m in model.named_modules() if isinstance(m, AdapterLinear)}
    if not layers:
        raise ValueError("the model has no adapter layers to merge")
    already = [name for name, layer in layers.items() if layer.merged]
    if already:
        raise RuntimeError(f"layers {already} are already merged; unmerge(model) first")
    _check_replayable(calibration)
    was_training = model.training
    model.eval()  # no dropout in the fitted activations
    merged, report = [], {}
    try:
        for layer in layers.values():
            if layer.exact_merge:
                layer.merge()
                merged.append(layer)
        inexact = {name: layer for name, layer in layers.items() if not layer.exact_merge}
        for name, layer in forward_order(model, inexact, calibration) if inexact else []:
            stats = collect(model, name, layer, calibration)
            with torch.autocast(stats.xtx.device.type, enabled=False):
                up = layer.scaling * layer.up_weight().double()
                delta = up @ fit_code(stats, ridge)
                report[name] = {"tokens": stats.tokens, "relative_error": relative_error(stats, delta, up),
                                "static_relative_error": relative_error(stats, layer.delta_weight(), up)}
            layer.merge(approximate=True, delta=delta)
            merged.append(layer)
    except BaseException:
        for layer in reversed(merged):
            layer.unmerge()
        raise
    finally:
        model.train(was_training)
    return report


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
