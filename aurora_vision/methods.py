"""The built-in methods. A new method is a layer (if it has one) plus one registration here."""
from functools import partial

from torch import nn

from .config import AuroraConfig, LoraConfig, TargetedConfig
from .inject import adapter_parameter_names, inject_adapters
from .layers import AuroraLinear, LoraLinear
from .registry import register_method


def inject(model: nn.Module, layer_cls: type, config: TargetedConfig) -> list:
    """Wrap the config's targets in `layer_cls`, built from the config's other fields."""
    inject_adapters(model, partial(layer_cls, **config.layer_kwargs()), config.targets)
    return adapter_parameter_names(model)


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
    return inject(model, LoraLinear, config)


@register_method("aurora", AuroraConfig)
def aurora(model: nn.Module, config: AuroraConfig) -> list:
    """AuroRA (Dong et al. 2025): LoRA with an adaptive nonlinearity between A and B."""
    return inject(model, AuroraLinear, config)
