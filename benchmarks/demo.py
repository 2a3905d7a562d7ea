"""The embedded default sweep: pre-train a tiny ViT on digits 0-4, then compare methods adapting it to 5-9."""
from importlib import resources
from pathlib import Path

import yaml
from safetensors.torch import save_file

from aurora_vision.targets import classifier_names

from . import store
from .config import deep_merge, load_config, resolve_run
from .run import train_run

DEMO_CONFIG = resources.files(__package__) / "demo.yaml"


def load_demo_config(overrides=()) -> tuple[dict, dict]:
    """(sweep config, pretraining settings) of the demo, with `--set` overrides applied to the sweep."""
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    pretrain = raw.pop("pretrain")
    ours = [o for o in overrides if o.startswith("pretrain.")]
    for item in ours:  # pretrain.KEY=VALUE sets the pretraining stage
        key, _, value = item[len("pretrain."):].partition("=")
        pretrain[key] = yaml.safe_load(value)
    return load_config(raw, [o for o in overrides if o not in ours]), pretrain


def pretrain_backbone(cfg: dict, pretrain: dict, quiet: bool = False) -> Path:
    """Stage 1: full training from scratch on the pretraining digits; saves the backbone (no head) once."""
    out = store.make_output(cfg["output"]) / "pretrained" / "backbone.safetensors"  # a bad output: refused now
    if out.is_file():
        return out
    pre = deep_merge(cfg, {"tuning": False, "data": {"classes": pretrain["classes"], "train_size": pretrain["train_size"], "val_size": 0},
                           "train": {"epochs": pretrain["epochs"], "lr": pretrain["lr"]}})
    run = resolve_run(pre, "digits_pretrain", "full", 0)
    result, model = train_run(run, quiet=quiet, return_model=True)
    heads = classifier_names(model)
    state = {k: v.contiguous() for k, v in model.state_dict().items()
             if not any(k.startswith(h + ".") for h in heads)}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out))
    if not quiet:
        print(f"pretrained backbone on digits {pretrain['classes']}: {result['accuracy']:.1f}% on held-out images")
    return out
