"""Method configs: one dataclass per method, validated on creation, serialisable with `asdict`."""
from dataclasses import dataclass, fields
from typing import Union

Targets = Union[str, list]


@dataclass
class NoConfig:
    """Methods without hyper-parameters of their own (full fine-tuning, linear probe)."""


@dataclass
class AdapterConfig:
    """Shared by the low-rank adapter methods.

    Args:
        r: rank of the branch.
        alpha: scaling numerator; the branch is scaled by alpha / r.
        dropout: dropout on the branch input.
        targets: a preset (`qv`, `qkv`, `attn`, `mlp`, `all`), a regex, or a list of regexes over module names.
    """
    r: int = 8
    alpha: float = 8.0
    dropout: float = 0.0
    targets: Targets = "qv"

    def __post_init__(self):
        if not isinstance(self.r, int) or self.r < 1:
            raise ValueError(f"r must be a positive int, got {self.r!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if isinstance(self.targets, tuple):
            self.targets = list(self.targets)


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
        self.grid_range = tuple(float(v) for v in self.grid_range)
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
