"""Sweep configs: YAML files merged over defaults (`include:` for a base file), `--set key.path=value`
overrides, and the resolution of one (task, method, seed) run into a complete, self-contained config."""
import copy
from pathlib import Path

import yaml

DEFAULTS = {
    "name": "sweep",
    "suite": "vtab",                  # task table used for class counts and VTAB groups
    "tasks": [],
    "methods": ["full", "linear", "lora", "aurora"],
    "seeds": [0],
    "tuning": False,                  # True: train on the tuning splits, evaluate on validation only
    "output": "results",
    "model": {"name": "vit_base_patch16_224.orig_in21k", "pretrained": True, "file": None, "image_size": 224,
              "kwargs": {}},
    "data": {"source": "vtab", "root": None, "train_split": "train800val200", "eval_split": "test",
             "tuning_train_split": "train800", "tuning_eval_split": "val200", "cache_dir": None,
             "hflip": False, "crop_scale": None},
    "train": {"epochs": 100, "batch_size": 64, "lr": 1e-3, "head_lr": None, "weight_decay": 1e-4,
              "warmup_epochs": 10, "schedule": "cosine", "label_smoothing": 0.0, "precision": "auto",
              "eval_every": 10, "eval_batch_size": 256, "device": "auto", "compile": False,
              "deterministic": False},  # True: bit-identical reruns on the same GPU (run/determinism.py)
    # variant or registered method -> learning rate (as `aurora-bench tune` writes them); a variant without an
    # entry takes its method's; below task and variant overrides
    "lrs": {},
    # learning-rate grids for `aurora-bench tune`: variant (or 'default') -> [rates]; trained on the tuning splits
    "tune": {"methods": None, "tasks": None, "seeds": [0], "lrs": {"default": [1e-3, 3e-3, 1e-2]}},
    # variant name -> {method: registered method (default: the name), config: {...}, train: {...}}
    "method_overrides": {},
    # task name -> {train: {...}, data: {...}, model: {...}}
    "task_overrides": {},
}
RUN_SECTIONS = ("model", "data", "train")


def deep_merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (update or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def load_config(source=None, overrides=()) -> dict:
    """DEFAULTS <- included files <- the file (or a dict) <- `overrides` ('a.b=value', values parsed as YAML)."""
    cfg = copy.deepcopy(DEFAULTS)
    if isinstance(source, dict):
        cfg = deep_merge(cfg, source)
    elif source is not None:
        cfg = deep_merge(cfg, _read_with_includes(Path(source)))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like key.path=value")
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {p!r} is not a section")
        node[leaf] = yaml.safe_load(value)
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; top-level keys: {sorted(DEFAULTS)}")
    return cfg


def _read_with_includes(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    base = {}
    for inc in data.pop("include", []) or []:
        base = deep_merge(base, _read_with_includes(path.parent / inc))
    return deep_merge(base, data)


def resolve_run(cfg: dict, task: str, variant: str, seed: int) -> dict:
    """Everything one run needs, and all that its result records: no reference back to the sweep file."""
    mo = cfg["method_overrides"].get(variant, {}) or {}
    to = cfg["task_overrides"].get(task, {}) or {}
    run = {"name": cfg["name"], "suite": cfg["suite"], "task": task, "seed": int(seed), "tuning": bool(cfg["tuning"])}
    method = mo.get("method", variant)
    lrs = cfg["lrs"] or {}
    lr = lrs.get(variant, lrs.get(method))  # a variant's own tuned rate, else its method's
    base = cfg if lr is None else {**cfg, "train": {**cfg["train"], "lr": lr}}
    for section in RUN_SECTIONS:
        run[section] = deep_merge(deep_merge(base[section], to.get(section, {})), mo.get(section, {}))
    run["method"] = {"variant": variant, "name": method, "config": mo.get("config", {}) or {}}
    data = run["data"]
    data["split_train"] = data["tuning_train_split"] if run["tuning"] else data["train_split"]
    data["split_eval"] = data["tuning_eval_split"] if run["tuning"] else data["eval_split"]
    return run
