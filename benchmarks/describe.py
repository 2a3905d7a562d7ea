"""`aurora-bench list`: what a config runs, in words: tasks, methods (variant -> registered method, its
config and learning rate), seeds, the recipe, and the data source with every option it reads."""
from .config import resolve_run
from .data import options_of


def _rates(cfg: dict, variant: str) -> str:
    rates = sorted({resolve_run(cfg, t, variant, cfg["seeds"][0])["train"]["lr"] for t in cfg["tasks"]})
    return f"lr {rates[0]:g}" if len(rates) == 1 else f"lr {rates[0]:g}..{rates[-1]:g} (by task)"


def _method_line(cfg: dict, variant: str, width: int) -> str:
    run = resolve_run(cfg, cfg["tasks"][0], variant, cfg["seeds"][0])
    config = run["method"]["config"]
    shown = " ".join(f"{k}={v}" for k, v in config.items()) if config else "its defaults"
    return f"  {variant:<{width}} -> {run['method']['name']:<10} {_rates(cfg, variant):<24} config: {shown}"


def _data_lines(data: dict) -> list:
    options = options_of(data["source"])
    width = max(len(k) for k in options)
    lines = []
    for key, option in options.items():
        unset = option.required and data.get(key) in (None, "")
        note = f"  [required: --set data.{key}=...]" if unset else ""
        lines.append(f"  {key:<{width}} = {data.get(key)!s:<16} {option.help}{note}")
    return lines


def describe(cfg: dict) -> str:
    tasks, methods, seeds = cfg["tasks"], cfg["methods"], cfg["seeds"]
    model, train = cfg["model"], cfg["train"]
    weights = f"weights {model['file']}" if model["file"] else ("pretrained" if model["pretrained"] else "random init")
    width = max(len(m) for m in methods)
    lines = [
        f"{cfg['name']}: {len(tasks)} task(s) x {len(methods)} method(s) x {len(seeds)} seed(s) = "
        f"{len(tasks) * len(methods) * len(seeds)} runs -> {cfg['output']}"
        + (" (tuning: trained on the tuning split, evaluated on validation)" if cfg["tuning"] else ""),
        f"suite: {cfg['suite']}",
        f"tasks: {', '.join(tasks)}",
        "methods (variant -> registered method, rate, config):",
        *(_method_line(cfg, v, width) for v in methods),
        f"seeds: {', '.join(map(str, seeds))}",
        f"model: {model['name']} ({weights}, {model['image_size']} px)",
        "train: " + ", ".join(f"{k} {v}" for k, v in train.items()),
    ]
    if cfg["task_overrides"]:
        overrides = (f"{task} ({', '.join(entry or {})})" for task, entry in cfg["task_overrides"].items())
        lines.append("task overrides: " + ", ".join(overrides))
    lines += [f"data: source {cfg['data']['source']}", *_data_lines(cfg["data"])]
    return "\n".join(lines)
