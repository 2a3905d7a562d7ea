"""Model surgery: put adapter layers around target Linears, freeze the rest, merge and unmerge."""
from typing import Callable, Iterator, Optional, Tuple

import torch
from torch import nn

from .calibrate import DEFAULT_RIDGE, calibrated_merge
from .layers import AdapterLinear
from .registry import STATE_ATTR, unwrap
from .targets import classifier_names, is_feature_backbone, resolve_targets, route_through_modules

try:
    from timm.layers import use_reentrant_ckpt
except ImportError:  # timm before set_reentrant_ckpt checkpoints with torch's default, which was reentrant
    def use_reentrant_ckpt() -> bool:
        return True


def inject_adapters(model: nn.Module, make_layer: Callable[..., AdapterLinear], targets) -> list[str]:
    """Replace each targeted Linear by `make_layer(base_layer, slices=...)`; returns the names wrapped."""
    if any(isinstance(m, AdapterLinear) for m in model.modules()):
        raise RuntimeError("model already has adapters; create a fresh model to apply another method")
    wrapped = []
    for target in resolve_targets(model, targets):
        parent_name, _, child = target.name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, make_layer(getattr(parent, child), slices=target.slices))
        wrapped.append(target.name)
    route_through_modules(model, wrapped)
    return wrapped


def patch_embedding(model: nn.Module) -> nn.Module:
    for name, module in model.named_modules():
        if name == "patch_embed" or name.endswith(".patch_embed"):
            return module
    raise ValueError(f"{type(model).__name__} has no patch_embed module to hook; "
                     "adapters need one to train under reentrant gradient checkpointing")


@torch.jit.unused
def _require_grad(output) -> None:
    # a torch.fx Proxy is no Tensor: tracing runs hooks, and its requires_grad would be a traced value
    if isinstance(output, torch.Tensor) and use_reentrant_ckpt() and torch.is_grad_enabled() \
            and not output.requires_grad:
        output.requires_grad_(True)


def _input_requires_grad_hook(module: nn.Module, args: Tuple[torch.Tensor], output: torch.Tensor) -> None:
    """Reentrant checkpointing (`timm.layers.set_reentrant_ckpt(True)`) gives a segment's parameters no
    gradient when its input needs none, which a frozen patch embedding's output does not: mark it, as peft's
    `enable_input_require_grads` does. Only under reentrant checkpointing: elsewhere the first block would
    compute an input gradient nobody uses."""
    if not torch.jit.is_scripting():  # TorchScript compiles hooks; training scripted models is out of scope
        _require_grad(output)


def enable_input_require_grads(model: nn.Module) -> None:
    """Hook the patch embedding so that adapters train under reentrant gradient checkpointing (idempotent)."""
    embedding = patch_embedding(model)
    if _input_requires_grad_hook not in embedding._forward_hooks.values():
        embedding.register_forward_hook(_input_requires_grad_hook)


def disable_input_require_grads(model: nn.Module) -> None:
    for module in model.modules():
        for key, hook in list(module._forward_hooks.items()):
            if hook is _input_requires_grad_hook:
                del module._forward_hooks[key]


def adapter_layers(model: nn.Module) -> Iterator[tuple[str, AdapterLinear]]:
    for name, module in model.named_modules():
        if isinstance(module, AdapterLinear):
            yield name, module


def is_adapter_layer(module: nn.Module) -> bool:
    """Ours, or a peft tuner layer (checked by name, so peft stays an optional import)."""
    return isinstance(module, AdapterLinear) or any(
        c.__name__ == "BaseTunerLayer" and c.__module__.startswith("peft.") for c in type(module).__mro__)


def adapter_parameter_names(model: nn.Module) -> list[str]:
    """Parameters that belong to adapter branches (ours or peft's), not to their frozen base layers."""
    names = []
    for layer_name, layer in model.named_modules():
        if is_adapter_layer(layer):
            names += [f"{layer_name}.{n}" for n, _ in layer.named_parameters() if not n.startswith("base_layer.")]
    return names


def head_parameter_names(model: nn.Module) -> list[str]:
    if is_feature_backbone(model):  # features_only: no classifier runs, so none trains
        return []
    heads = classifier_names(model)
    return [n for n, _ in model.named_parameters() if any(n.startswith(h + ".") for h in heads)]


def set_trainable(model: nn.Module, names) -> None:
    names = set(names)
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)


def merge(model: nn.Module, approximate: bool = False, calibration=None, ridge: Optional[float] = None):
    """Fold every adapter into its base weight. AuroRA needs `approximate=True` (the static merge) or
    `calibration` (input batches: the calibrated merge, `calibrate.calibrated_merge`, whose per-layer fit
    report this returns; `ridge` is its regularisation, default `calibrate.DEFAULT_RIDGE`)."""
    if calibration is None:
        if ridge is not None:
            raise ValueError("ridge applies to the calibrated merge only: pass calibration too")
    elif approximate:
        raise ValueError("pass approximate=True (the static merge) or calibration (the calibrated one), not both")
    else:
        return calibrated_merge(model, calibration, DEFAULT_RIDGE if ridge is None else ridge)
    for _, layer in adapter_layers(model):
        layer.merge(approximate=approximate)


def unmerge(model: nn.Module) -> None:
    for _, layer in adapter_layers(model):
        layer.unmerge()


def merge_and_unload(model: nn.Module, approximate: bool = False, calibration=None,
                     ridge: Optional[float] = None) -> nn.Module:
    """Merge every adapter and put the plain base Linear back in its place: a plain timm model again (the
    base model's structure and speed, every parameter trainable, no method recorded), e.g. to deploy or
    to fine-tune further. No way back (use merge/unmerge to keep the adapters). AuroRA needs
    `approximate=True` (the static merge) or `calibration` (the calibrated merge, as in `merge`)."""
    if calibration is not None or ridge is not None:
        merge(model, approximate, calibration, ridge)
    for name, layer in list(adapter_layers(model)):
        if not layer.merged:
            layer.merge(approximate=approximate)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer.base_layer)
    disable_input_require_grads(model)
    model.requires_grad_(True)
    inner = unwrap(model)  # the method is recorded on the timm model, inside a torch.compile wrapper
    if hasattr(inner, STATE_ATTR):
        delattr(inner, STATE_ATTR)
    return model
