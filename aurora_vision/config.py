"""Method configs: one dataclass per method, validated on creation, serialisable with `asdict`.

An adapter config's fields other than `targets` are its layer's keyword arguments (`layer_kwargs`), so a
new option is one field here and one argument in the layer.
"""
from dataclasses import dataclass, field, fields
from numbers import Real
from typing import Union

Targets = Union[str, list]


@dataclass
class NoConfig:
    """Methods without hyper-parameters of their own (full fine-tuning, linear probe)."""


def check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_dropout(dropout) -> None:
    if isinstance(dropout, bool) or not isinstance(dropout, Real) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")


def check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, Real) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")


def check_targets(targets) -> Targets:
    """A preset or regex (str), or a non-empty list of regexes; tuples become lists (JSON round trip)."""
    if isinstance(targets, tuple):
        targets = list(targets)
    ok = isinstance(targets, str) and targets or (
        isinstance(targets, list) and targets and all(isinstance(t, str) and t for t in targets))
    if not ok:
        raise ValueError(f"targets must be a preset name or regex (str), or a non-empty list of regexes, "
                         f"got {targets!r}")
    return targets


@dataclass
class TargetedConfig:
    """Shared by every method that adapts chosen Linear layers.

    Args:
        targets: a preset (`qv`, `qkv`, `attn`, `mlp`, `all`), a regex, or a list of regexes over module names.
    """
    # keyword-only, so subclasses keep their own fields first in positional order
    targets: Targets = field(default="qv", kw_only=True)

    def __post_init__(self):
        self.targets = check_targets(self.targets)

    def layer_kwargs(self) -> dict:
        """The fields an adapter layer takes as keyword arguments: all but `targets`."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "targets"}


@dataclass
class AdapterConfig(TargetedConfig):
    """Shared by the low-rank adapter methods.

    Args:
        r: rank of the branch.
        alpha: scaling numerator; the branch is scaled by alpha / r.
        dropout: dropout on the branch input.
    """
    r: int = 8
    alpha: float = 8.0
    dropout: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        check_positive_int("r", self.r)
        check_positive("alpha", self.alpha)
        check_dropout(self.dropout)


@dataclass
class LoraConfig(AdapterConfig):
    """LoRA. Defaults as peft's (r=8, alpha=8) on the paper's q/v placement.

    Args:
        use_rslora: scale by alpha / sqrt(r).
    """
    use_rslora: bool = False


@dataclass
class AuroraConfig(AdapterConfig):
    """AuroRA with the paper's defaults: r=2, alpha=4, q and v; splines G=5, k=3 on [-1, 1].

    Args:
        grid_size: G, spline grid intervals.
        spline_order: k, B-spline order.
        grid_range: interval covered by the grid.
        use_tanh: keep the tanh(H tanh(z)) path (False = the paper's "without F" ablation).
        use_spline: keep the B-spline path (False = the paper's "without L" ablation).
    """
    r: int = 2
    alpha: float = 4.0
    grid_size: int = 5
    spline_order: int = 3
    grid_range: tuple = (-1.0, 1.0)
    use_tanh: bool = True
    use_spline: bool = True

    def __post_init__(self):
        super().__post_init__()
        check_positive_int("grid_size", self.grid_size)
        check_positive_int("spline_order", self.spline_order)
        self.grid_range = tuple(float(v) for v in self.grid_range)
        if len(self.grid_range) != 2 or not self.grid_range[0] < self.grid_range[1]:
            raise ValueError(f"grid_range must be (low, high) with low < high, got {self.grid_range!r}")
        if not (self.use_tanh or self.use_spline):
            raise ValueError("AuroRA needs use_tanh or use_spline (or both)")


def make_config(config_cls: type, config=None, **overrides):
    """A `config_cls` from None / True (defaults), a dict, or an instance, with keyword overrides."""
    if config is None or config is True:
        config = {}
    if isinstance(config, config_cls):
        config = {f.name: getattr(config, f.name) for f in fields(config_cls)}
    if not isinstance(config, dict):
        raise TypeError(f"expected True, a dict or a {config_cls.__name__}, got {type(config).__name__}")
    merged = {**config, **overrides}
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise TypeError(f"{config_cls.__name__} has no field(s) {unknown}; fields: {sorted(known)}")
    return config_cls(**merged)
