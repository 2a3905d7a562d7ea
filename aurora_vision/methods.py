"""The built-in methods. A new method is a layer (if it has one) plus one registration here."""
from functools import partial

from torch import nn

from .config import AuroraConfig, LoraConfig
from .inject import adapter_parameter_names, inject_adapters
from .layers import AuroraLinear, LoraLinear
from .registry import register_method


@register_method("full")
def full(model: nn.Module, config) -> list:
    """Full fine-tuning: every parameter trains."""
    return [n for n, _ in model.named_parameters()]


@register_method("linear")
def linear(model: nn.Module, config) -> list:
    """Linear probe: only the classifier head trains."""
    return []


@register_method("lora", LoraConfig)
def lora(model: nn.Module, config: LoraConfig) -> list:
    """LoRA (Hu et al. 2021) on the target Linears."""
    inject_adapters(model, partial(LoraLinear, r=config.r, alpha=config.alpha, dropout=config.dropout,
                                   use_rslora=config.use_rslora), config.targets)
    return adapter_parameter_names(model)


@register_method("aurora", AuroraConfig)
def aurora(model: nn.Module, config: AuroraConfig) -> list:
    """AuroRA (Dong et al. 2025): LoRA with an adaptive nonlinearity between A and B."""
    inject_adapters(model, partial(
        AuroraLinear, r=config.r, alpha=config.alpha, dropout=config.dropout, grid_size=config.grid_size,
        spline_order=config.spline_order, grid_range=config.grid_range,
        use_tanh=config.use_tanh, use_spline=config.use_spline), config.targets)
    return adapter_parameter_names(model)
