"""The data sources by name, each with the options it reads from the `data:` section of a config.

A source is one file in this folder: a function `(data config, task, split) -> RawSplit` registered with
`@register_source(name, check=..., **options)`. Options every source shares (splits, cache, augmentation) are in
COMMON; `options_of(name)` is what a config's `data:` may hold for that source.

A source's `check(data config, task, split)` says, cheaply and offline (no image read, no network), whether the
task and split exist, raising DataError naming what is missing (an unknown task with the nearest name it knows):
`check_split` runs it for every task and split of a sweep, tune or run before any run is made, so that a
mistyped root or task is refused once instead of failing, and being recorded as failed, run after run."""
from dataclasses import dataclass
from typing import Callable

from ..schema import Option
from .raw import DataError, RawSplit


def _crop_scale(v):
    ok = isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v) \
        and 0 < v[0] <= v[1] <= 1
    return None if ok else "must be [low, high] with 0 < low <= high <= 1"


def _positive(v):
    return None if v > 0 else "must be > 0"


COMMON = {
    "source": Option(str, "vtab", help="where images come from (see `aurora-bench list`)"),
    "train_split": Option(str, "train800val200", help="split trained on"),
    "eval_split": Option(str, "test", help="split whose final-epoch accuracy is reported"),
    "tuning_train_split": Option(str, "train800", help="split trained on when tuning"),
    "tuning_eval_split": Option(str, "val200", help="validation split evaluated when tuning"),
    "cache_dir": Option(str, None, help="decoded-image cache (default ~/.cache/aurora_vision)"),
    "num_classes": Option(int, None, check=_positive, help="class count, for tasks no table knows"),
    "hflip": Option(bool, False, help="random horizontal flips in training"),
    "crop_scale": Option(list, None, check=_crop_scale, help="RandomResizedCrop-style area range in training"),
    # 'none' keeps evaluation's geometry equal to training's (whole image resized to the input size), which
    # is also the VTAB-1k protocol (NOAH) and FourierFT's; 'timm' is the model's own eval transform.
    "eval_crop": Option(str, "none", choices=("none", "timm"), nullable=False,
                        help="evaluation resize: 'none' (whole image to the input size, as training) or 'timm' "
                             "(shorter side to size / crop_pct, center crop, as timm's eval transform)"),
}


@dataclass(frozen=True)
class Source:
    name: str
    list_split: Callable[[dict, str, str], RawSplit]
    options: dict
    check: Callable[[dict, str, str], None]


SOURCES: dict[str, Source] = {}


def register_source(name: str, check: Callable[[dict, str, str], None], **options: Option):
    """Decorator: `@register_source("vtab", check_vtab, root=Option(str, required=True))` over the listing
    function; `check` is the source's cheap existence check (see the module's doc)."""
    clash = set(options) & set(COMMON)
    if clash:
        raise ValueError(f"source {name!r} redeclares common data options {sorted(clash)}")

    def wrap(fn):
        if name in SOURCES:
            raise KeyError(f"data source {name!r} is already registered")
        SOURCES[name] = Source(name, fn, options, check)
        return fn
    return wrap


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise DataError(f"unknown data.source {name!r}; sources: {', '.join(sorted(SOURCES))}")
    return SOURCES[name]


def options_of(name: str) -> dict:
    """Every key a `data:` section may hold with this source."""
    return {**COMMON, **get_source(name).options}


def _configured(cfg: dict) -> Source:
    source = get_source(cfg.get("source"))
    for key, option in source.options.items():
        if option.required and not cfg.get(key):
            raise DataError(f"data.source {source.name!r} needs data.{key} ({option.help}; e.g. --set data.{key}=...)")
    return source


def list_split(cfg: dict, task: str, split: str) -> RawSplit:
    """One split of one task from the source `cfg['source']` names."""
    return _configured(cfg).list_split(cfg, task, split)


def check_split(cfg: dict, task: str, split: str) -> None:
    """Whether the source `cfg['source']` names has this task and split, cheaply and offline; raises DataError."""
    _configured(cfg).check(cfg, task, split)
