"""Our folder format: every trainable tensor in safetensors; method, config, base model, the tensors' names
and shapes and the backbone's fingerprint in adapter_config.json. Holds any method."""
import json
from dataclasses import asdict
from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from ..config import make_config
from ..registry import get_method
from .architecture import FIELDS, architecture
from .checkpoint import CONFIG_NAME, WEIGHTS_NAME, Checkpoint, as_json, base_model_name, check_fields, read_weights

SCHEMA = {"method": str, "config": dict, "base_model": str, "num_classes": (int, type(None)), "tensors": dict,
          "architecture": FIELDS}


def write(model: nn.Module, state: dict, path: Path) -> None:
    tensors = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    path.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path / WEIGHTS_NAME))
    config = {
        "method": state["method"], "config": state["config"], "base_model": base_model_name(model),
        "num_classes": getattr(model, "num_classes", None),
        "tensors": {n: list(t.shape) for n, t in tensors.items()},
        "architecture": architecture(model),
    }
    (path / CONFIG_NAME).write_text(json.dumps(config, indent=2))


def read(folder: Path, saved: dict) -> Checkpoint:
    """`saved` is the parsed adapter_config.json; every key is checked before it is used."""
    config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    check_fields(saved, SCHEMA, config_file)
    try:
        spec = get_method(saved["method"])
        # every field, defaults filled in: a file from before a field was added still compares equal
        config = as_json(asdict(make_config(spec.config_cls, saved["config"])))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{config_file}: invalid method or config: {e.args[0] if e.args else e}") from None
    tensors, _ = read_weights(weights_file)
    listed = saved["tensors"]
    if any(not isinstance(s, list) or not all(isinstance(d, int) for d in s) for s in listed.values()):
        raise ValueError(f"{config_file}: 'tensors' must map names to shapes (lists of ints)")
    actual = {n: list(t.shape) for n, t in tensors.items()}
    if actual != listed:
        differ = sorted(set(actual) ^ set(listed)) or sorted(n for n in actual if actual[n] != listed[n])
        raise ValueError(f"{weights_file} does not hold the tensors {config_file} lists (first difference: "
                         f"{differ[0]!r}); the folder mixes two saves or was edited: save the adapter again")
    return Checkpoint(folder, saved["method"], config, tensors, saved["base_model"], saved["architecture"])
