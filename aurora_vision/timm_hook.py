"""`timm.create_model(..., aurora=...)`: importing aurora_vision teaches timm this keyword.

Adapters are added after timm has built the model and loaded its weights, so pretrained loading
(hub names, `pretrained_cfg_overlay=dict(file=...)`, strict key checks) is untouched. `checkpoint_path`,
which timm loads into the built model, names an adapted model's state dict here: it loads once the
adapters exist.
"""
import functools
import inspect

import timm
import timm.models

from .inject import adapter_parameter_names
from .registry import apply


def load_adapted_checkpoint(model, checkpoint_path) -> None:
    """Load an adapted model's state dict (as `torch.save(model.state_dict())` wrote it) into `model`, strictly."""
    state = timm.models.load_state_dict(checkpoint_path)  # timm's reader: EMA, 'state_dict' and 'module.' forms
    adapter_keys = adapter_parameter_names(model)
    if not set(adapter_keys) & set(state):
        raise ValueError(
            f"checkpoint_path {str(checkpoint_path)!r} holds no adapter tensors (e.g. {adapter_keys[0]!r}): it is a "
            "base model's checkpoint. Load it before the adapters are added with "
            "pretrained=True, pretrained_cfg_overlay=dict(file=...), or drop aurora= to load it as timm does.")
    model.load_state_dict(state, strict=True)


def _patch_create_model() -> None:
    original = timm.models.create_model
    if getattr(original, "_aurora_vision", False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def create_model(model_name, *args, aurora=None, **kwargs):
        """timm.create_model, plus `aurora`: True (the paper's config), a dict or an AuroraConfig."""
        if aurora is None or aurora is False:
            return original(model_name, *args, **kwargs)
        bound = signature.bind(model_name, *args, **kwargs)
        checkpoint_path = bound.arguments.pop("checkpoint_path", None)
        model = original(*bound.args, **bound.kwargs)
        apply(model, "aurora", aurora)
        if checkpoint_path:
            load_adapted_checkpoint(model, checkpoint_path)
        return model

    create_model._aurora_vision = True
    timm.create_model = timm.models.create_model = create_model


_patch_create_model()
