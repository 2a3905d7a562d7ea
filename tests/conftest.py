"""Tiny timm models (a few blocks at 32 px) of every supported family, built without weights."""
import pytest
import timm
import torch

import aurora_vision  # noqa: F401  (enables the aurora= keyword)

TINY = {
    "vit": ("vit_tiny_patch16_224", dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2)),
    "deit_distilled": ("deit_tiny_distilled_patch16_224",
                       dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2)),
    "dinov2": ("vit_small_patch14_dinov2", dict(img_size=28, patch_size=7, depth=2, embed_dim=32, num_heads=2)),
    "swin": ("swin_tiny_patch4_window7_224",
             dict(img_size=32, window_size=4, embed_dim=16, depths=(1, 1), num_heads=(1, 2))),
    "swinv2": ("swinv2_tiny_window8_256",
               dict(img_size=32, window_size=4, embed_dim=16, depths=(1, 1), num_heads=(1, 2))),
}
IMG = {"dinov2": 28}


def tiny_model(family: str = "vit", num_classes: int = 5, **kwargs):
    name, arch = TINY[family]
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=num_classes, **arch, **kwargs)


def tiny_input(family: str = "vit", batch: int = 2, seed: int = 1):
    size = IMG.get(family, 32)
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(params=sorted(TINY))
def family(request):
    return request.param
