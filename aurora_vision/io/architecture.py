"""The backbone an adapter was trained on, as a small fingerprint a checkpoint records and a load checks.

Two timm models of one name can differ in depth or width (`depth=`, `embed_dim=`, ...); an adapter's
tensors alone may fit both (the linear probe's head does), so the structure itself is compared.
"""
import hashlib
import re

from torch import nn

from ..inject import adapter_parameter_names, head_parameter_names

BLOCK = re.compile(r"(?:.+\.)?blocks\.\d+")  # a transformer block in timm's ViT and Swin naming
FIELDS = {"blocks": int, "parameters": int, "tensors": int, "digest": str}


def architecture(model: nn.Module) -> dict:
    """{'blocks', 'parameters', 'tensors', 'digest'} of the backbone: the parameters that are neither
    adapter branches nor the classifier (the checkpoint carries and checks those), named as in the
    plain model (adapter wrappers' `base_layer.` folded away), so it is the same with or without a
    method applied. `digest` hashes every name and shape."""
    skip = set(adapter_parameter_names(model)) | set(head_parameter_names(model))
    shapes = sorted((n.replace(".base_layer.", "."), tuple(p.shape))
                    for n, p in model.named_parameters() if n not in skip)
    text = "\n".join(f"{n}:{','.join(map(str, shape))}" for n, shape in shapes)
    return {
        "blocks": sum(1 for n, _ in model.named_modules() if BLOCK.fullmatch(n)),
        "parameters": sum(_numel(shape) for _, shape in shapes),
        "tensors": len(shapes),
        "digest": hashlib.sha256(text.encode()).hexdigest()[:16],
    }


def describe(arch: dict) -> str:
    return (f"{arch['blocks']} blocks, {arch['parameters']:,} backbone parameters in {arch['tensors']} tensors "
            f"(digest {arch['digest']})")


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
