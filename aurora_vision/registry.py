"""The method registry: each fine-tuning method is one registration of a config class and an apply
function that makes the model's trainable set (the classifier head always trains)."""
from dataclasses import asdict, dataclass
from typing import Callable

from torch import nn

from .config import NoConfig, make_config

STATE_ATTR = "aurora_vision_method"  # set on a model once a method is applied: {"method": ..., "config": ...}


@dataclass(frozen=True)
class Method:
    name: str
    config_cls: type
    apply: Callable[[nn.Module, object], list]  # (model, config) -> names of the trainable parameters


_METHODS: dict[str, Method] = {}


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a torch.compile wrapper (OptimizedModule keeps it as `_orig_mod`), else `model`:
    methods and checkpoints work on the timm model's own names, not on `_orig_mod.`-prefixed ones."""
    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(inner, nn.Module) else model


def register_method(name: str, config_cls: type = NoConfig):
    """Decorator: `@register_method("lora", LoraConfig)` over `def apply(model, config) -> trainable names`."""
    def wrap(fn):
        if name in _METHODS:
            raise KeyError(f"method {name!r} is already registered")
        _METHODS[name] = Method(name, config_cls, fn)
        return fn
    return wrap


def list_methods() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> Method:
    if name not in _METHODS:
        raise KeyError(f"unknown method {name!r}; known methods: {', '.join(list_methods())}")
    return _METHODS[name]


def apply(model: nn.Module, method: str, config=None, **overrides) -> nn.Module:
    """Apply `method` to `model` in place and return it: adapters injected, everything frozen but the
    method's parameters and the classifier head.

    `config` is None/True (defaults), a dict, or the method's config object; keywords override fields.
    An adapted layer that the model's forward never calls, or whose parameters its output does not depend
    on, is a ValueError naming it (`liveness.check_live`); the model keeps the adapters then: start afresh.
    """
    from .inject import enable_input_require_grads, head_parameter_names, set_trainable
    from .liveness import check_live

    inner = unwrap(model)
    if getattr(inner, STATE_ATTR, None) is not None:
        raise RuntimeError(f"model already has method {getattr(inner, STATE_ATTR)['method']!r} applied")
    spec = get_method(method)
    cfg = make_config(spec.config_cls, config, **overrides)
    trainable, head = set(spec.apply(inner, cfg)), set(head_parameter_names(inner))
    set_trainable(inner, trainable | head)
    embedding = [n for n, _ in inner.named_parameters() if "patch_embed." in n]
    if trainable - head and not any(n in trainable for n in embedding):
        # parameters train inside blocks behind a frozen embedding: reentrant checkpointing needs its output marked
        enable_input_require_grads(inner)
    check_live(inner, method)  # before the method is recorded: an adapter the forward never runs is an error
    setattr(inner, STATE_ATTR, {"method": method, "config": asdict(cfg)})
    return model


def applied_method(model: nn.Module) -> dict:
    state = getattr(unwrap(model), STATE_ATTR, None)
    if state is None:
        raise ValueError("no aurora_vision method is applied to this model; call aurora_vision.apply first")
    return state
