"""A merged config checked against sections.py, and what one key cannot say alone: methods that exist,
a variant's method config, warmup below epochs, overrides that name real keys. Errors are ConfigErrors
naming the key, the value and what would do.

Two stages: `check_sections` (every key and value, no library) and `check_methods` (the methods, which imports
aurora_vision and with it torch and timm, seconds): a mistyped key or value, or a command's own check between
the two (its data, config.load_config's `require`), is answered before the library loads."""
import json
from dataclasses import replace

from .sections import METHOD_OVERRIDE, MODEL, TASK_OVERRIDE, TOP, TRAIN, TUNE, file_name
from ..data import COMMON, SOURCES, check_split, lookup, options_of
from ..schema import ConfigError, check_given, closest, validate


def check_sections(cfg: dict) -> dict:
    """The config with every section completed by its defaults, its keys and values checked (overrides' too);
    raises ConfigError on the first problem. Data options a source requires (data.root) may still be unset:
    `require_data` checks them before a run. Method names and method configs are `check_methods`'s."""
    out = validate("", cfg, TOP)
    out["model"] = validate("model", cfg.get("model") or {}, MODEL)
    out["train"] = check_train("train", cfg.get("train") or {})
    out["data"] = check_data("data", cfg.get("data") or {})
    out["tune"] = validate("tune", cfg.get("tune") or {}, TUNE)
    for variant, entry in out["method_overrides"].items():
        problem = file_name(variant) if isinstance(variant, str) else "must be a string"
        if problem:
            raise ConfigError(f"method_overrides: the variant name {variant!r} {problem}")
        check_given(f"method_overrides.{variant}", entry or {}, METHOD_OVERRIDE)
        _check_sections(f"method_overrides.{variant}", entry or {}, out)
    _check_rates(out)
    _check_grids(out)
    _check_task_overrides(out)
    return out


def check_methods(cfg: dict) -> None:
    """Every variant the config names (methods, lrs, tune, method_overrides) is a registered method or a variant
    of one, with a config its method takes. Imports the library (torch)."""
    variants = _check_method_overrides(cfg)
    _check_variants("methods", cfg["methods"], variants)
    _check_variants("lrs", list(cfg["lrs"]), variants)
    _check_variants("tune.methods", cfg["tune"]["methods"] or [], variants)
    _check_variants("tune.lrs", [v for v in cfg["tune"]["lrs"] if v != "default"], variants)


def check_run(run: dict) -> dict:
    """One resolved run (overrides merged) checked and completed, so that no override sneaks in a bad value.
    Its method config is method_overrides' own, which `check_methods` checked (code that brings its own runner,
    sweep(runner=...), may name methods of its own)."""
    where = f"the run of task {run['task']!r} with method {run['method']['variant']!r}: "
    try:
        out = dict(run)
        out["model"] = validate("model", run["model"], MODEL)
        out["train"] = check_train("train", run["train"])
        out["data"] = check_data("data", run["data"])
    except ConfigError as e:
        raise ConfigError(where + str(e)) from e
    return out


def check_train(section: str, values: dict) -> dict:
    train = validate(section, values, TRAIN)
    if train["warmup_epochs"] >= train["epochs"]:
        # with warmup_epochs == epochs the rate only climbs: the schedule's decay would never happen
        raise ConfigError(f"{section}.warmup_epochs ({train['warmup_epochs']}) must be below {section}.epochs "
                          f"({train['epochs']}) so that the {train['schedule']} decay runs; lower warmup_epochs "
                          "(0 for none) or raise epochs")
    if train["deterministic"] and train["compile"] == "regional-autotune":
        # inductor's deterministic mode picks each GEMM's kernel without timing: the autotune would not happen
        raise ConfigError(f"{section}.deterministic cannot go with {section}.compile=regional-autotune: inductor's "
                          "deterministic mode times no kernels, so nothing would be autotuned; use "
                          f"{section}.compile=regional (or auto) with deterministic, or drop deterministic")
    return train


def source_options(section: str, values: dict) -> dict:
    """What `data:` may hold with its source. Options the source requires (data.root) may stay unset here: a
    shipped config leaves data.root to --set, and `aurora-bench list` shows it; `require_data` insists."""
    source = values.get("source", COMMON["source"].default)
    if source not in SOURCES:
        raise ConfigError(f"{section}.source {source!r} is not a data source{closest(str(source), SOURCES)} "
                          f"(sources: {', '.join(sorted(SOURCES))})")
    options = options_of(source)
    return {k: replace(o, required=False) for k, o in options.items()}


def check_data(section: str, values: dict) -> dict:
    options = source_options(section, values)
    source = values.get("source", options["source"].default)
    for key in sorted(set(values) - set(options)):
        owners = sorted(name for name, s in SOURCES.items() if key in s.options)
        if owners:  # left from another source, or meant for one
            raise ConfigError(f"unknown key {section}.{key} for data.source {source!r} (an option of "
                              f"source {', '.join(owners)})")
    return validate(section, values, options)


def require_data(run: dict, checked: set | None = None) -> None:
    """The options the run's data source needs (data.root, data.path) are set, and its task and splits exist as far
    as the source can tell cheaply and offline (data.check_split): checked before anything loads. `checked`
    holds what earlier calls checked, so that runs sharing their data are checked once."""
    data = run["data"]
    for key, option in options_of(data["source"]).items():
        if option.required and data.get(key) in (None, ""):
            raise ConfigError(f"data.source {data['source']!r} needs data.{key} ({option.help}), e.g. "
                              f"--set data.{key}=... (task {run['task']!r})")
    for split in dict.fromkeys((data["split_train"], data["split_eval"])):
        key = json.dumps([data, run["task"], split], sort_keys=True, default=str)
        if checked is None or key not in checked:
            check_split(data, run["task"], split)
            if checked is not None:
                checked.add(key)


def known_variants(cfg: dict) -> list:
    import aurora_vision as av
    return sorted(set(av.list_methods()) | set(cfg["method_overrides"]))


def method_config(variant: str, method: str, config) -> None:
    """The variant's `config:` builds the method's config dataclass (unknown fields and bad values refused)."""
    import aurora_vision as av
    from aurora_vision.config import make_config
    if method not in av.list_methods():
        raise ConfigError(f"method {method!r} (of variant {variant!r}) is not a registered method"
                          f"{closest(method, av.list_methods())} (registered: {', '.join(av.list_methods())})")
    try:
        make_config(av.get_method(method).config_cls, config or {})
    except (TypeError, ValueError) as e:
        raise ConfigError(f"method_overrides.{variant}.config does not fit method {method!r}: {e}") from e


def _check_variants(where: str, names, variants) -> None:
    for name in names:
        if name not in variants:
            raise ConfigError(f"{where}: {name!r} is neither a registered method nor a variant in method_overrides"
                              f"{closest(name, variants)} (known: {', '.join(variants)})")


def _check_method_overrides(cfg: dict) -> list:
    import aurora_vision as av
    for variant, entry in cfg["method_overrides"].items():
        where = f"method_overrides.{variant}"
        entry = entry or {}
        method = entry.get("method") or variant
        if method not in av.list_methods() and "method" not in entry:
            raise ConfigError(f"{where} needs method: <a registered method> ({variant!r} is not one"
                              f"{closest(variant, av.list_methods())}; registered: {', '.join(av.list_methods())})")
        method_config(variant, method, entry.get("config"))
    return known_variants(cfg)


def _check_sections(where: str, entry: dict, cfg: dict) -> None:
    """An override's train/model/data name real keys with sound values (the merged run is checked again)."""
    for name, options in (("train", TRAIN), ("model", MODEL)):
        if entry.get(name) is not None:
            check_given(f"{where}.{name}", entry[name], options)
    data = entry.get("data")
    if data is not None:
        source = {"source": data.get("source", cfg["data"]["source"])}
        check_given(f"{where}.data", data, source_options(f"{where}.data", source))


def _check_rates(cfg: dict) -> None:
    for name, lr in cfg["lrs"].items():
        per_task = lr if isinstance(lr, dict) else {None: lr}  # one rate, or a rate per task (tune.per_task)
        for task, rate in per_task.items():
            where = f"lrs.{name}" + (f".{task}" if task is not None else "")
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0:
                raise ConfigError(f"{where} must be a learning rate > 0 (or a mapping task -> rate), got {rate!r}")


def _check_grids(cfg: dict) -> None:
    tune = cfg["tune"]
    for v in tune["methods"] or cfg["methods"]:
        if not tune["lrs"].get(v, tune["lrs"].get("default")):
            raise ConfigError(f"tune.lrs has no grid for {v!r} and no 'default' grid")


def _check_task_overrides(cfg: dict) -> None:
    named = set(cfg["tasks"]) | set(cfg["tune"]["tasks"] or [])
    for task, entry in cfg["task_overrides"].items():
        where = f"task_overrides.{task}"
        if task not in named and lookup(cfg["suite"], task) is None:
            raise ConfigError(f"{where}: {task!r} is neither in tasks nor a task of suite {cfg['suite']!r}"
                              f"{closest(str(task), sorted(named))}")
        entry = entry or {}
        check_given(where, entry, TASK_OVERRIDE)
        _check_sections(where, entry, cfg)
