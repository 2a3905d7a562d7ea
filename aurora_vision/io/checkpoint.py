"""An adapter checkpoint in our terms, whatever its format, and the checks that put it into a model."""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from ..registry import STATE_ATTR, applied_method, apply
from .architecture import architecture, describe

WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"


@dataclass
class Checkpoint:
    """What a folder holds, named as our model's parameters.

    `base_model` and `architecture` are None where the folder does not record them (a LoRA that peft
    itself saved). `may_lack`: trainable parameters the folder may leave as the model has them (the
    classifier, when a peft LoRA did not save it: peft then keeps the base model's head too).
    """
    folder: Path
    method: str
    config: dict  # the method's config, every field, as JSON values
    tensors: dict
    base_model: Optional[str] = None
    architecture: Optional[dict] = None
    may_lack: frozenset = frozenset()


def base_model_name(model: nn.Module) -> str:
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    arch, tag = cfg.get("architecture", type(model).__name__), cfg.get("tag")
    return f"{arch}.{tag}" if tag else arch


def read_json(file: Path) -> dict:
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{file} is not valid JSON ({e}); save the adapter again") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file} holds a JSON {type(data).__name__}, expected an object; save the adapter again")
    return data


def check_fields(data: dict, schema: dict, source, prefix: str = "") -> None:
    """Every key of `schema` present in `data` with its type (a nested dict schema checks a nested object)."""
    for key, kind in schema.items():
        where = f"{prefix}{key}"
        if key not in data:
            raise ValueError(f"{source} lacks the key {where!r}; save the adapter again")
        value = data[key]
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                raise ValueError(f"{source}: {where!r} is a {type(value).__name__}, expected an object")
            check_fields(value, kind, source, where + ".")
        elif not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            want = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise ValueError(f"{source}: {where!r} is {value!r}, expected {want}")


def read_weights(file: Path) -> tuple[dict, dict]:
    """(tensors, metadata) of a safetensors file; a clear error for a damaged one."""
    try:
        with safe_open(str(file), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except SafetensorError as e:
        raise ValueError(f"{file} is not a readable safetensors file ({e}); save the adapter again") from None


def load_checkpoint(model: nn.Module, ckpt: Checkpoint, check_base_model: bool) -> None:
    """Put `ckpt` into `model`, applying its method first if the model has none. The base model and its
    structure are checked before anything changes; then the tensors must be exactly the model's
    trainable parameters (none unknown, none missing but `may_lack`), each of its shape."""
    where = ckpt.folder
    base = base_model_name(model)
    if check_base_model and ckpt.base_model is not None and ckpt.base_model != base:
        raise ValueError(f"adapter in {where} was trained on {ckpt.base_model!r}, model is {base!r} "
                         "(pass check_base_model=False to load anyway)")
    if ckpt.architecture is not None and ckpt.architecture != architecture(model):
        raise ValueError(f"adapter in {where} was saved from a {ckpt.base_model} with {describe(ckpt.architecture)}; "
                         f"this model has {describe(architecture(model))}. Create the model with the same "
                         "arguments (depth, embed_dim, patch_size, ...) as the one that was saved")
    check_values(ckpt)
    if getattr(model, STATE_ATTR, None) is None:
        try:
            apply(model, ckpt.method, ckpt.config)
        except ValueError as e:  # the saved targets match nothing here: say which file they came from
            raise ValueError(f"adapter in {where} does not fit this model: {e}") from None
    state = applied_method(model)
    if state["method"] != ckpt.method or as_json(state["config"]) != ckpt.config:
        raise ValueError(f"adapter in {where} is {ckpt.method} {ckpt.config}, "
                         f"model has {state['method']} {as_json(state['config'])}")
    params = dict(model.named_parameters())
    unknown = sorted(set(ckpt.tensors) - set(params))
    if unknown:
        raise ValueError(f"adapter in {where} has tensors with no parameter in the model: {_some(unknown)}")
    for name, tensor in ckpt.tensors.items():
        if params[name].shape != tensor.shape:
            raise ValueError(f"adapter tensor {name!r} from {where} has shape {tuple(tensor.shape)}, "
                             f"model expects {tuple(params[name].shape)} (different num_classes or rank?)")
    trainable = {n for n, p in params.items() if p.requires_grad}
    missing = sorted(trainable - set(ckpt.tensors) - ckpt.may_lack)
    if missing:
        raise ValueError(f"adapter in {where} lacks {len(missing)} of the model's trainable parameters: "
                         f"{_some(missing)} (an incomplete or edited file; save the adapter again)")
    with torch.no_grad():
        for name, tensor in ckpt.tensors.items():
            params[name].copy_(tensor)


def check_values(ckpt: Checkpoint) -> None:
    """Every tensor floating point and finite: copying into the model's float parameters would cast integers
    and booleans silently, and NaN or inf weights load fine but give NaN outputs."""
    file = ckpt.folder / WEIGHTS_NAME
    for name, tensor in ckpt.tensors.items():
        if not tensor.is_floating_point():
            raise ValueError(f"adapter tensor {name!r} in {file} is {tensor.dtype}, not floating point like the "
                             "parameter it loads into (save_adapter writes them as they are): save the adapter again")
        finite = torch.isfinite(tensor)
        if not finite.all():
            raise ValueError(f"adapter tensor {name!r} in {file} holds {int((~finite).sum())} non-finite value(s) "
                             "(NaN or inf): the training diverged or the file was damaged; train or save it again")


def as_json(obj):
    return json.loads(json.dumps(obj))


def _some(names: list, shown: int = 8) -> str:
    return ", ".join(names[:shown]) + (f", ... ({len(names) - shown} more)" if len(names) > shown else "")
