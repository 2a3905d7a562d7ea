"""Inference cost per image with fvcore, with handles for what stock fvcore drops.

fvcore counts one multiply-add as one "flop", so its totals are MACs: we report them as GMACs. Stock
fvcore silently drops `aten::scaled_dot_product_attention` (ViT-B/16: 16.87 G instead of 17.58 G) and
elementwise ops such as tanh. We add a handle for SDPA, and count the submodules a module (an adapter layer)
names in its `flop_modules` (AuroRA's nonlinearity) in full: their einsums as MACs and their elementwise ops (tanh,
the spline polynomial) at one per output element.
Elementwise ops elsewhere (GELU, softmax, residual adds) keep fvcore's convention of not being counted,
so base models read as the field reports them; whatever went uncounted is listed with the result.
"""
import warnings
from collections import Counter
from math import prod

import torch
from torch import nn

with warnings.catch_warnings():  # fvcore's import runs torch.jit.script, which torch now flags as deprecated
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import elementwise_flop_counter, get_shape


# Elementwise ops counted inside an adapter's flop_modules; each costs one op per output element.
NONLINEARITY_ELEMENTWISE = ["tanh", "add", "sub", "rsub", "mul", "div", "abs", "pow", "clamp", "clamp_min",
                            "where", "lt", "neg"]
# Ops that are data movement or constant construction, not arithmetic on the input.
NOT_ARITHMETIC = {"aten::float", "aten::numpy_T", "aten::Float", "aten::block_diag", "aten::index_copy", "aten::unflatten",
                  "aten::expand_as", "aten::mean"}


def sdpa_flop_jit(inputs, outputs) -> int:
    """MACs of softmax(q k^T) v: q k^T is L x S x d per head, the product with v L x S x d_v."""
    q, k, v = (get_shape(inputs[i]) for i in range(3))
    return prod(q[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])


def _analysis(module: nn.Module, inputs, extra_handles: dict) -> FlopCountAnalysis:
    fca = FlopCountAnalysis(module, inputs)
    fca.set_op_handle("aten::scaled_dot_product_attention", sdpa_flop_jit, **extra_handles)
    fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    return fca


def count_macs(model: nn.Module, image_size: int, in_chans: int = 3) -> dict:
    """{'gmacs': per image, 'uncounted_ops': {op: occurrences}}, with the adapters' flop_modules counted."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.zeros(1, in_chans, image_size, image_size, device=device)
    nonlin = {f"{name}.{sub}".lstrip("."): module.get_submodule(sub)
              for name, module in model.named_modules() for sub in getattr(module, "flop_modules", ())}
    captured = {}
    hooks = [m.register_forward_hook(lambda mod, args, out, n=n: captured.__setitem__(n, args[0].detach()))
             for n, m in nonlin.items()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    with warnings.catch_warnings():  # torch.jit's deprecation notices, once per trace
        warnings.simplefilter("ignore", FutureWarning)
        return _count(model, x, nonlin, captured, was_training)


def _count(model, x, nonlin, captured, was_training) -> dict:
    main = _analysis(model, x, {})
    total = main.total()
    uncounted = Counter(main.unsupported_ops())
    elementwise = {f"aten::{op}": elementwise_flop_counter(0, 1) for op in NONLINEARITY_ELEMENTWISE}
    elementwise["aten::sum"] = elementwise_flop_counter(1, 0)
    for name, module in nonlin.items():  # replace fvcore's partial count of each module by a full one
        total -= main.total(name)
        uncounted -= Counter(main.unsupported_ops(name))
        sub = _analysis(module, (captured[name],), elementwise)
        total += sub.total()
        uncounted += Counter(sub.unsupported_ops())
    model.train(was_training)
    uncounted = {op: n for op, n in sorted(uncounted.items()) if op not in NOT_ARITHMETIC}
    return {"gmacs": total / 1e9, "uncounted_ops": uncounted}
