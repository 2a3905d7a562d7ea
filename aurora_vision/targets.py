"""Which Linear layers of a timm model get adapters: presets per family, user regexes, and checks."""
import re
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from torch import nn

from timm.models._features import FeatureDictNet, FeatureGetterNet, FeatureHookNet
from timm.models.swin_transformer import SwinTransformer, SwinTransformerStage
from timm.models.swin_transformer_v2 import SwinTransformerV2, SwinTransformerV2Stage
from timm.models.vision_transformer import VisionTransformer

# Families by base class, so DeiT, DINOv2 (`vit_*_dinov2`) and other VisionTransformer subclasses count.
FAMILIES = {"vit": (VisionTransformer,), "swin": (SwinTransformer, SwinTransformerV2)}
# `features_only=True` wraps the model: FeatureGetterNet keeps it whole (ViT); FeatureListNet (a
# FeatureDictNet) and FeatureHookNet keep only its modules up to the last feature, so Swin is known by its stages.
FEATURE_WRAPPERS = (FeatureDictNet, FeatureHookNet, FeatureGetterNet)
FAMILY_PARTS = {"vit": FAMILIES["vit"], "swin": FAMILIES["swin"] + (SwinTransformerStage, SwinTransformerV2Stage)}

# Slice labels of the fused attn.qkv Linear (d -> 3d: q, k, v in that order in timm).
QKV_PARTS = {"q": 0, "k": 1, "v": 2}
QKV = r".*\.attn\.qkv"
PRESETS = {
    "qv": {QKV: ("q", "v")},  # the paper's placement: separate adapters on the q and v slices
    "qkv": {QKV: None},
    "attn": {QKV: None, r".*\.attn\.proj": None},
    "mlp": {r".*\.mlp\.fc1": None, r".*\.mlp\.fc2": None},
    "all": {QKV: None, r".*\.attn\.proj": None, r".*\.mlp\.fc1": None, r".*\.mlp\.fc2": None},
}

Targets = Union[str, Sequence[str]]


@dataclass(frozen=True)
class Target:
    name: str
    slices: Optional[list]  # output row ranges, one adapter each; None = the whole output


def model_family(model: nn.Module) -> str:
    """`vit` or `swin`, for a timm model of the family or timm's `features_only` wrapper of one."""
    for family, classes in FAMILIES.items():
        if isinstance(model, classes):
            return family
    if isinstance(model, FEATURE_WRAPPERS):
        for family, parts in FAMILY_PARTS.items():
            if any(isinstance(m, parts) for m in model.modules()):
                return family
    supported = ", ".join(f"{f} ({', '.join(c.__name__ for c in cls)})" for f, cls in FAMILIES.items())
    raise TypeError(f"aurora_vision does not support {type(model).__name__} models; supported families: {supported}, "
                    "and their features_only=True backbones (FeatureListNet, FeatureGetterNet; not feature_cls='fx')")


def classifier_names(model: nn.Module) -> tuple[str, ...]:
    """Module names of the classifier head(s), from timm's protocol (`pretrained_cfg['classifier']`); inside
    a FeatureGetterNet, those of the model it wraps (a head kept by `prune=False`, unused there)."""
    if isinstance(model, FeatureGetterNet):
        return tuple(f"model.{name}" for name in classifier_names(model.model))
    name = getattr(model, "pretrained_cfg", {}).get("classifier") or "head"
    return (name,) if isinstance(name, str) else tuple(name)


def is_feature_backbone(model: nn.Module) -> bool:
    """A timm `features_only` model: feature maps out, no classifier to train."""
    return isinstance(model, FEATURE_WRAPPERS)


def _parse(targets: Targets) -> dict:
    if isinstance(targets, str):
        return PRESETS[targets] if targets in PRESETS else {targets: None}
    return {pattern: None for pattern in targets}


def resolve_targets(model: nn.Module, targets: Targets) -> list[Target]:
    """The Linear layers of `model` that `targets` (a preset name, a regex, or a list of regexes,
    each full-matched against module names) selects. Never the classifier head or a Conv2d."""
    model_family(model)
    heads = classifier_names(model)
    candidates = {
        name: m for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and not any(name == h or name.startswith(h + ".") for h in heads)
    }
    found = []
    for pattern, parts in _parse(targets).items():
        try:
            regex = re.compile(pattern)
        except re.error as e:
            raise ValueError(f"target pattern {pattern!r} is not a valid regex ({e}); presets: {sorted(PRESETS)}")
        matched = [n for n in candidates if regex.fullmatch(n)]
        if not matched:
            shown = ", ".join(list(candidates)[:12]) + (", ..." if len(candidates) > 12 else "")
            raise ValueError(
                f"target pattern {pattern!r} matches no Linear layer of {type(model).__name__} "
                f"(classifier excluded). Presets: {sorted(PRESETS)}; candidate Linear names: {shown}")
        for name in matched:
            found.append(Target(name, _qkv_slices(candidates[name], parts) if parts else None))
    names = [t.name for t in found]
    if len(set(names)) != len(names):
        raise ValueError(f"target patterns {targets!r} select some layers twice")
    return found


def route_through_modules(model: nn.Module, names: Sequence[str]) -> None:
    """Make the forward call each named Linear as a module, so that an adapter wrapped around it runs.

    timm's SwinV2, BEiT and EVA attention with q/v biases computes `F.linear(x, qkv.weight, qkv_bias)`, which
    never calls `qkv`; its `qkv_bias_separate` switch (an argument of their attention classes, not of the
    models) computes `qkv(x) + qkv_bias` instead: the same sum, through the module. A layer that the forward
    reads some other way is left as it is, and `apply` refuses its adapter (liveness.py)."""
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        if child == "qkv" and hasattr(parent, "qkv_bias_separate"):
            parent.qkv_bias_separate = True


def _qkv_slices(layer: nn.Linear, parts: Sequence[str]) -> list:
    if layer.out_features % 3:
        raise ValueError(f"cannot split a qkv Linear with {layer.out_features} outputs into q, k, v")
    d = layer.out_features // 3
    return [(QKV_PARTS[p] * d, (QKV_PARTS[p] + 1) * d) for p in parts]
