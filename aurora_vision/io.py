"""Adapter checkpoints: the trainable tensors in safetensors, the method config and base model in JSON."""
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .inject import adapter_layers
from .registry import applied_method, apply

WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"


def base_model_name(model: nn.Module) -> str:
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    arch, tag = cfg.get("architecture", type(model).__name__), cfg.get("tag")
    return f"{arch}.{tag}" if tag else arch


def save_adapter(model: nn.Module, path) -> Path:
    """Write what the method trains (adapters and head) and its config to the folder `path`."""
    state = applied_method(model)
    if state.get("unloaded"):
        raise RuntimeError("the adapters were merged and unloaded; save before merge_and_unload")
    if any(layer.merged for _, layer in adapter_layers(model)):
        raise RuntimeError("save_adapter needs unmerged adapters; call aurora_vision.unmerge(model) first")
    tensors = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path / WEIGHTS_NAME))
    config = {
        "method": state["method"], "config": state["config"], "base_model": base_model_name(model),
        "num_classes": getattr(model, "num_classes", None),
        "tensors": {n: list(t.shape) for n, t in tensors.items()},
    }
    (path / CONFIG_NAME).write_text(json.dumps(config, indent=2))
    return path


def load_adapter(model: nn.Module, path, check_base_model: bool = True) -> nn.Module:
    """Load a `save_adapter` folder into `model` (a fresh timm model of the same base), applying the
    saved method first if the model has none. Raises on a different base model, method or shape."""
    path = Path(path)
    if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{path} is not an adapter folder: expected {CONFIG_NAME} and {WEIGHTS_NAME} in it")
    saved = json.loads((path / CONFIG_NAME).read_text())
    base = base_model_name(model)
    if check_base_model and saved["base_model"] != base:
        raise ValueError(f"adapter in {path} was trained on {saved['base_model']!r}, model is {base!r} "
                         "(pass check_base_model=False to load anyway)")
    if getattr(model, "aurora_vision_method", None) is None:
        apply(model, saved["method"], saved["config"])
    state = applied_method(model)
    if state["method"] != saved["method"] or _jsonable(state["config"]) != saved["config"]:
        raise ValueError(f"adapter in {path} is {saved['method']} {saved['config']}, "
                         f"model has {state['method']} {_jsonable(state['config'])}")
    tensors = load_file(str(path / WEIGHTS_NAME))
    params = dict(model.named_parameters())
    for name, tensor in tensors.items():
        if name not in params:
            raise ValueError(f"adapter tensor {name!r} from {path} has no parameter in the model")
        if params[name].shape != tensor.shape:
            raise ValueError(f"adapter tensor {name!r} from {path} has shape {tuple(tensor.shape)}, "
                             f"model expects {tuple(params[name].shape)} (different num_classes or rank?)")
    with torch.no_grad():
        for name, tensor in tensors.items():
            params[name].copy_(tensor)
    return model


def _jsonable(obj):
    return json.loads(json.dumps(obj))
