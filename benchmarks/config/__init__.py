"""Sweep configs: YAML files merged over the declared defaults (`include:` for base files), `--set
key.path=value` overrides, all checked against the schema (sections.py, checks.py); and the
resolution of one (task, method, seed) run into a complete, self-contained, checked config."""
import copy
import re
from pathlib import Path

import yaml

from .checks import check_methods, check_run, check_sections, known_variants, require_data
from .sections import SECTIONS, TOP
from ..data import COMMON, SOURCES, options_of
from ..schema import ConfigError, closest


def _defaults() -> dict:
    out = {key: copy.deepcopy(option.default) for key, option in TOP.items()}
    for name, options in SECTIONS.items():
        out[name] = {key: copy.deepcopy(option.default) for key, option in options.items()}
    out["data"] = {key: copy.deepcopy(o.default) for key, o in options_of(COMMON["source"].default).items()}
    return out


DEFAULTS = _defaults()
# Real configs are a few kB and include 1-3 files (base, rates); these bounds are far above them.
MAX_CONFIG_BYTES = 256 * 1024
MAX_CONFIG_FILES = 64  # read for one config, its includes and theirs: bounds the depth of includes and their fan-out


class _Loader(yaml.SafeLoader):
    """YAML 1.2 floats: PyYAML (YAML 1.1) reads `lr: 1e-3` as the string '1e-3'."""


class _Dumper(yaml.SafeDumper):
    """Quotes what _Loader would read back as another type: a hash such as '1518767248e9' is a float there."""


for _yaml_io in (_Loader, _Dumper):
    _yaml_io.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+"
                   r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|\.(?:inf|Inf|INF))$|^\.(?:nan|NaN|NAN)$"),
        list("-+0123456789."))


def dump_yaml(data) -> str:
    """YAML that parse_yaml reads back as `data` (rates files, resolved sweep configs)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)


def parse_yaml(text: str, where: str):
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{where} is not valid YAML{at}: {getattr(e, 'problem', None) or e}") from e


def deep_merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (update or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def merge_data(base: dict, update) -> dict:
    """A `data:` layer over another. A layer naming another source starts that source's options afresh (the
    common keys carry over): vtab's data.root means nothing to the hf source."""
    if not isinstance(base, dict) or not isinstance(update, dict):
        return copy.deepcopy(update if update is not None else base)
    if "source" in update and update["source"] != base.get("source"):
        base = {k: v for k, v in base.items() if k in COMMON}
    return deep_merge(base, update)


def merge_config(base: dict, update: dict) -> dict:
    out = deep_merge(base, {k: v for k, v in update.items() if k != "data"})
    if "data" in update:
        out["data"] = merge_data(base.get("data"), update["data"])
    return out


def load_config(source=None, overrides=(), require=None) -> dict:
    """DEFAULTS <- included files <- the file (or a dict) <- `overrides` ('a.b=value', values parsed as YAML),
    checked: the config itself, and every run its tasks and variants resolve to. `require(cfg)` is a command's
    own check (its data: `require_ready`), run once the keys and values are checked and before the method checks
    import the library (torch, seconds): a missing or mistyped data root is answered at once."""
    cfg = copy.deepcopy(DEFAULTS)
    if isinstance(source, dict):
        if "include" in source:
            raise ConfigError("include: works in config files only (its names are relative to the file)")
        cfg = merge_config(cfg, source)
    elif source is not None:
        cfg = merge_config(cfg, read_config(Path(source)))
    for item in overrides:
        apply_override(cfg, item)
    cfg = check_sections(cfg)
    tasks = dict.fromkeys([*cfg["tasks"], *(cfg["tune"]["tasks"] or []), *cfg["task_overrides"]])
    variants = dict.fromkeys([*cfg["methods"], *(cfg["tune"]["methods"] or []), *cfg["method_overrides"]])
    for task in tasks:
        for variant in variants:
            resolve_run(cfg, task, variant, cfg["seeds"][0])
    if require is not None:
        require(cfg)
    check_methods(cfg)
    return cfg


def read_config(path: Path, chain: tuple = (), reads: list | None = None) -> dict:
    """The file merged over the files its `include:` names (relative to it, in order); cycles are errors, and so
    are more than MAX_CONFIG_FILES files read for one config (`reads`: those read so far) and a file over
    MAX_CONFIG_BYTES: a mistake or a generated file must not cost minutes and gigabytes before a refusal."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist" + (f" (included by {chain[-1]})" if chain else ""))
    if any(path.resolve() == p.resolve() for p in chain):
        raise ConfigError(f"include cycle: {' -> '.join(str(p) for p in (*chain, path))}")
    reads = [] if reads is None else reads
    reads.append(path)
    if len(reads) > MAX_CONFIG_FILES:
        shown = [*chain[:2], "...", chain[-1], path] if len(chain) > 3 else [*chain, path]
        raise ConfigError(f"{reads[0]} and its includes make more than {MAX_CONFIG_FILES} config files to read "
                          f"(includes here: {' -> '.join(map(str, shown))}); flatten the includes")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is {size:,} bytes, over the {MAX_CONFIG_BYTES:,} a config may be: it "
                          "holds settings, not data (task lists and labels belong in the data folder)")
    data = parse_yaml(path.read_text(), str(path))
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys (name:, tasks:, train:, ...), "
                          f"got a {type(data).__name__}")
    includes = data.pop("include", None) or []
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError(f"include in {path} must be a list of file names such as [base.yaml], got {includes!r}")
    base = {}
    for name in includes:
        base = merge_config(base, read_config(path.parent / name, (*chain, path), reads))
    return merge_config(base, data)


def config_files(path) -> list:
    """[(file, its own mapping)] of a config and every file it includes, in merge order (a file's includes
    before it): which file set a key, for messages about where a value came from. Read after `load_config`
    has checked the chain."""
    path = Path(path)
    data = parse_yaml(path.read_text(), str(path)) or {}
    out = []
    for name in data.get("include") or []:
        out += config_files(path.parent / name)
    return out + [(path, data)]


def apply_override(cfg: dict, item: str) -> None:
    """`key.path=value` set in place; the value is YAML (`seeds=[0,1]`, `train.lr=3e-3`, `data.root=/x`)."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r} must look like key.path=value, e.g. train.lr=0.01")
    value = parse_yaml(text, f"the value of override {item!r}")
    *parents, leaf = key.split(".")
    node = cfg
    for depth, name in enumerate(parents):
        if node.get(name) is None:
            node[name] = {}
        if not isinstance(node[name], dict):
            raise ConfigError(f"override {item!r}: {'.'.join(parents[:depth + 1])} is {node[name]!r}, not a section")
        node = node[name]
    if key == "data.source":
        cfg["data"] = merge_data(cfg["data"], {"source": value})
    else:
        node[leaf] = value


def resolve_run(cfg: dict, task: str, variant: str, seed: int) -> dict:
    """Everything one run needs, and all that its result records: no reference back to the sweep file.
    Checked like the config, so that a task or variant override cannot bring in a bad value."""
    mo = cfg["method_overrides"].get(variant) or {}
    to = cfg["task_overrides"].get(task) or {}
    run = {"name": cfg["name"], "suite": cfg["suite"], "task": task, "seed": int(seed), "tuning": bool(cfg["tuning"])}
    method = mo.get("method") or variant
    lrs = cfg["lrs"] or {}
    lr = lrs.get(variant, lrs.get(method))  # a variant's own tuned rate, else its method's
    if isinstance(lr, dict):  # chosen per task (tune.per_task): a task it was not tuned on has no rate
        if task not in lr:
            raise ConfigError(f"lrs.{variant if variant in lrs else method} holds rates per task and none for "
                              f"{task!r} (tuned on: {', '.join(lr)}); tune on that task too")
        lr = lr[task]
    base = cfg if lr is None else {**cfg, "train": {**cfg["train"], "lr": lr}}
    for section in ("model", "train"):
        run[section] = deep_merge(deep_merge(base[section], to.get(section) or {}), mo.get(section) or {})
    run["data"] = merge_data(merge_data(base["data"], to.get("data") or {}), mo.get("data") or {})
    run["method"] = {"variant": variant, "name": method, "config": mo.get("config") or {}}
    try:
        run = check_run(run)
    except ConfigError as e:
        layers = [f"task_overrides.{task}"] * bool(to) + [f"method_overrides.{variant}"] * bool(mo) + \
                 [f"lrs.{variant if variant in lrs else method}"] * (lr is not None)
        if not layers:
            raise
        raise ConfigError(f"{e} (this run merges {' and '.join(layers)} over the config)") from e
    data = run["data"]
    data["split_train"] = data["tuning_train_split"] if run["tuning"] else data["train_split"]
    data["split_eval"] = data["tuning_eval_split"] if run["tuning"] else data["eval_split"]
    return run


def expand(cfg: dict) -> list[dict]:
    """Every run of the config: tasks x methods x seeds, resolved."""
    if not cfg["tasks"]:
        raise ValueError("the config lists no tasks (set tasks: [...] or --set tasks=[...])")
    return [resolve_run(cfg, t, m, s) for t in cfg["tasks"] for m in cfg["methods"] for s in cfg["seeds"]]


def without_defaults(run: dict) -> dict:
    """`run` less the model, train and data keys that hold their declared default: a key declared after a
    result was recorded (with a default that keeps the old behaviour) then leaves that result comparable."""
    out = dict(run)
    data = run.get("data") or {}
    declared = {"model": SECTIONS["model"], "train": SECTIONS["train"],
                "data": options_of(data["source"]) if data.get("source") in SOURCES else COMMON}
    for section, options in declared.items():
        if isinstance(run.get(section), dict):
            out[section] = {k: v for k, v in run[section].items()
                            if not (k in options and v == options[k].default)}
    return out


def select_run(cfg: dict, task: str, variant: str, seed: int) -> dict:
    """The run `aurora-bench run` asks for, refused before anything loads when the config does not know its
    task or its method. Its data is `require_ready`'s to check, first (the CLI runs it before the method checks,
    through load_config's `require`)."""
    require_task(cfg, task)
    variants = sorted(set(known_variants(cfg)) | set(cfg["methods"]))
    if variant not in variants:
        raise ConfigError(f"unknown method {variant!r}{closest(variant, variants)}: neither a registered method "
                          f"nor a variant in method_overrides (known: {', '.join(variants)})")
    return resolve_run(cfg, task, variant, seed)


def require_ready(cfg: dict, runs=None) -> None:
    """Every run of `runs` (resolved; default: all of the config's) can start: its task is one of the config's, its
    data source has the options it needs, and the task and its splits exist as far as the source can tell cheaply
    (data.check_split). Checked before the first run is made or recorded, so that a mistyped data root or task is
    refused once, naming it, instead of failing every run. The CLI passes the runs the command would make
    (store.to_make): finished runs need no data."""
    runs = expand(cfg) if runs is None else runs
    for run in runs:
        require_task(cfg, run["task"])
    checked = set()
    for run in runs:
        require_data(run, checked)


def require_task(cfg: dict, task: str) -> None:
    if task not in cfg["tasks"]:
        raise ConfigError(f"task {task!r} is not in the config's tasks{closest(task, cfg['tasks'])} "
                          f"(tasks: {', '.join(cfg['tasks'])}); add it with --set tasks=[...]")
