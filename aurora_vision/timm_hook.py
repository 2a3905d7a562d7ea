"""`timm.create_model(..., aurora=...)`: importing aurora_vision teaches timm this keyword.

Adapters are added after timm has built the model and loaded its weights, so pretrained loading
(hub names, `pretrained_cfg_overlay=dict(file=...)`, strict key checks) is untouched.
"""
import functools

import timm
import timm.models

from .registry import apply


def _patch_create_model() -> None:
    original = timm.models.create_model
    if getattr(original, "_aurora_vision", False):
        return

    @functools.wraps(original)
    def create_model(model_name, *args, aurora=None, **kwargs):
        """timm.create_model, plus `aurora`: True (the paper's config), a dict or an AuroraConfig."""
        model = original(model_name, *args, **kwargs)
        if aurora is not None and aurora is not False:
            apply(model, "aurora", aurora)
        return model

    create_model._aurora_vision = True
    timm.create_model = timm.models.create_model = create_model


_patch_create_model()
