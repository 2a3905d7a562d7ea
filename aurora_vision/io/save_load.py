"""save_adapter / load_adapter: a folder with adapter_model.safetensors and adapter_config.json, in our
format (any method) or peft's LoRA format (our `lora`, to and from peft)."""
from pathlib import Path

from torch import nn

from ..inject import adapter_layers
from ..registry import applied_method, unwrap
from . import native, peft_format
from .checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_checkpoint, read_json

FORMATS = {"aurora_vision": native, "peft": peft_format}


def save_adapter(model: nn.Module, path, format: str = "aurora_vision") -> Path:
    """Write what the method trains (adapters and head) to the folder `path`.

    Args:
        model: a model with a method applied (torch.compile'd or not: keys are the timm model's own).
        format: `aurora_vision` (any method; records the method config, base model and its structure) or
            `peft` (our `lora` only: a folder `peft.PeftModel.from_pretrained(base, path)` loads, q/v
            slice adapters written as one LoRA of rank 2r on the fused qkv, the head as `modules_to_save`).
    """
    if format not in FORMATS:
        raise ValueError(f"unknown adapter format {format!r}; formats: {sorted(FORMATS)}")
    model = unwrap(model)
    state = applied_method(model)
    if any(layer.merged for _, layer in adapter_layers(model)):
        raise RuntimeError("save_adapter needs unmerged adapters; call aurora_vision.unmerge(model) first")
    path = Path(path)
    FORMATS[format].write(model, state, path)  # creates the folder once the model is known to fit the format
    return path


def load_adapter(model: nn.Module, path, check_base_model: bool = True) -> nn.Module:
    """Load an adapter folder into `model` (a fresh timm model built as the saved one was, or one with the
    saved method already applied) and return `model`.

    Reads our format and peft LoRA folders (`peft_type: LORA`; those load as our `lora` on the modules
    peft targets). Refuses, naming both sides: another base model or backbone structure (depth, width),
    another method or config, a tensor the model lacks or of another shape, a trainable parameter the file
    lacks, and a malformed file. Structure is checked before the method is applied.
    """
    inner = unwrap(model)
    path = Path(path)
    if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{path} is not an adapter folder: expected {CONFIG_NAME} and {WEIGHTS_NAME} in it")
    saved = read_json(path / CONFIG_NAME)
    if "peft_type" in saved:
        ckpt = peft_format.read(path, saved, inner)
    else:
        ckpt = native.read(path, saved)
    load_checkpoint(inner, ckpt, check_base_model)
    return model
