"""A run's model: timm builds it (and loads its weights), then the registry applies the method."""
import contextlib
import os

import timm
from torch import nn

import aurora_vision as av

from .hub import WeightsUnavailable, cache_only, hub_offline, offline_message


def build_model(model_cfg: dict, method_cfg: dict, num_classes: int) -> nn.Module:
    kwargs = dict(model_cfg.get("kwargs") or {})
    if model_cfg.get("image_size"):
        kwargs.setdefault("img_size", model_cfg["image_size"])
    if model_cfg.get("file"):
        kwargs["pretrained_cfg_overlay"] = dict(file=str(model_cfg["file"]))
    pretrained = bool(model_cfg.get("pretrained") or model_cfg.get("file"))
    name = model_cfg["name"]
    if model_cfg.get("file") and not os.path.isfile(model_cfg["file"]):
        raise WeightsUnavailable(f"model.file {model_cfg['file']} does not exist")
    offline = pretrained and not model_cfg.get("file") and hub_offline()
    try:
        with cache_only() if offline else contextlib.nullcontext():
            model = timm.create_model(name, pretrained=pretrained, num_classes=num_classes, **kwargs)
    except RuntimeError as e:
        if "Unknown model" in str(e):
            raise ValueError(f"unknown timm model {name!r} (model.name); see timm.list_models()") from e
        raise
    except (OSError, ConnectionError) as e:  # hub unreachable, file unreadable
        if offline:
            raise WeightsUnavailable(offline_message(name)) from e
        raise RuntimeError(f"could not load pretrained weights for {name!r}: {e}. Offline? Point model.file at a "
                           "local weights file (.safetensors/.pth), or set model.pretrained=false") from e
    return av.apply(model, method_cfg["name"], method_cfg.get("config") or {})


def param_groups(model: nn.Module, lr: float, head_lr: float, weight_decay: float) -> list:
    """AdamW groups: head and the rest at their own learning rates; no decay on biases, norms and
    the tokens timm lists in `no_weight_decay()`. Frozen parameters stay out of the optimizer."""
    head = set(av.inject.head_parameter_names(model))
    skip = set(getattr(model, "no_weight_decay", lambda: set())())
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = p.ndim > 1 and name not in skip
        key = (name in head, decay)
        groups.setdefault(key, {"params": [], "lr": head_lr if name in head else lr,
                                "weight_decay": weight_decay if decay else 0.0})["params"].append(p)
    return list(groups.values())
