"""Baselines through peft's own tuners (`peft-lora`, `dora`, `fourierft`, `vera`), on timm models in place.

peft adapts whole modules, so the fused `attn.qkv` is adapted as one Linear: q, k and v together, one A
shared by all three. The paper's `qv` placement (separate adapters on the q and v slices) has no peft
equivalent, and asking for it raises; our own `lora` / `aurora` do it. Defaults name their source.
peft is imported only when one of these methods is applied: `pip install peft`.
"""
from dataclasses import dataclass, field

from torch import nn

from .config import AdapterConfig, TargetedConfig, check_dropout, check_positive, check_positive_int
from .inject import adapter_parameter_names
from .registry import register_method
from .targets import PRESETS, Targets, resolve_targets, route_through_modules


def peft_target_modules(model: nn.Module, targets: Targets) -> str:
    """Our presets / regexes as peft `target_modules` (a regex string, full-matched by peft), checked
    against the model with our own rules: same errors for nothing matched, head never included; the
    layers it selects are routed through their modules as for our methods (`route_through_modules`)."""
    if isinstance(targets, str) and targets in PRESETS:
        preset = PRESETS[targets]
        if any(parts is not None for parts in preset.values()):
            raise ValueError(f"target preset {targets!r} adapts slices of the fused qkv, which peft cannot: use "
                             "targets='qkv' (q, k and v as one module) with peft methods, or our own lora/aurora")
        patterns = list(preset)
    else:
        patterns = [targets] if isinstance(targets, str) else list(targets)
    pattern = "|".join(f"(?:{p})" for p in patterns)
    route_through_modules(model, [target.name for target in resolve_targets(model, pattern)])
    return pattern


@dataclass
class PeftLoraConfig(AdapterConfig):
    """peft's LoRA (LoraConfig defaults: r=8, lora_alpha=8, dropout 0); targets default to the fused qkv."""
    targets: Targets = field(default="qkv", kw_only=True)
    use_rslora: bool = False


@dataclass
class DoraConfig(PeftLoraConfig):
    """DoRA (Liu et al. 2024) as peft's LoraConfig(use_dora=True); r and alpha as peft-lora."""


@dataclass
class FourierFTConfig(TargetedConfig):
    """FourierFT (Gao et al. 2024), peft's tuner. n_frequency=3000 and scaling=300 are peft's documented
    settings for ViT image classification (FourierFTConfig docstring)."""
    n_frequency: int = 3000
    scaling: float = 300.0
    random_loc_seed: int = 777
    targets: Targets = field(default="qkv", kw_only=True)

    def __post_init__(self):
        super().__post_init__()
        check_positive_int("n_frequency", self.n_frequency)
        check_positive("scaling", self.scaling)


@dataclass
class VeraConfig(TargetedConfig):
    """VeRA (Kopiczko et al. 2024), peft's tuner with its defaults: r=256, d_initial=0.1, dropout 0."""
    r: int = 256
    d_initial: float = 0.1
    dropout: float = 0.0
    projection_prng_key: int = 0
    targets: Targets = field(default="qkv", kw_only=True)

    def __post_init__(self):
        super().__post_init__()
        check_positive_int("r", self.r)
        check_positive("d_initial", self.d_initial)
        check_dropout(self.dropout)


def _inject(model: nn.Module, peft_config) -> list:
    import peft
    peft.inject_adapter_in_model(peft_config, model)
    return adapter_parameter_names(model)


def _peft_lora(model: nn.Module, config: PeftLoraConfig, use_dora: bool) -> list:
    import peft
    targets = peft_target_modules(model, config.targets)
    return _inject(model, peft.LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                          use_rslora=config.use_rslora, use_dora=use_dora, target_modules=targets))


@register_method("peft-lora", PeftLoraConfig)
def peft_lora(model: nn.Module, config: PeftLoraConfig) -> list:
    """peft's LoRA, for results comparable with peft users'."""
    return _peft_lora(model, config, use_dora=False)


@register_method("dora", DoraConfig)
def dora(model: nn.Module, config: DoraConfig) -> list:
    """DoRA: LoRA on the direction, a learned magnitude per output (peft)."""
    return _peft_lora(model, config, use_dora=True)


@register_method("fourierft", FourierFTConfig)
def fourierft(model: nn.Module, config: FourierFTConfig) -> list:
    """FourierFT: learn n spectral coefficients of each weight update (peft); the paper's vision baseline."""
    import peft
    targets = peft_target_modules(model, config.targets)
    return _inject(model, peft.FourierFTConfig(n_frequency=config.n_frequency, scaling=config.scaling,
                                               random_loc_seed=config.random_loc_seed, target_modules=targets))


@register_method("vera", VeraConfig)
def vera(model: nn.Module, config: VeraConfig) -> list:
    """VeRA: frozen random A, B shared across layers, learned scaling vectors (peft)."""
    import peft
    from peft.tuners.vera import VeraModel

    targets = peft_target_modules(model, config.targets)
    # VeRA's shared projections live on its tuner, which inject_adapter_in_model refuses; the tuner wires
    # them into each layer as buffers, so the timm model keeps working on its own once it has run.
    VeraModel(model, peft.VeraConfig(r=config.r, d_initial=config.d_initial, vera_dropout=config.dropout,
                                     projection_prng_key=config.projection_prng_key, target_modules=targets),
              "default")
    return adapter_parameter_names(model)


@register_method("bitfit")
def bitfit(model: nn.Module, config) -> list:
    """BitFit (Ben Zaken et al. 2022): only the bias terms (and the head) train."""
    return [n for n, p in model.named_parameters() if n.endswith(".bias")]
