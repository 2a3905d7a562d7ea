"""Trainable-parameter accounting, split into adapter and head (fvcore's parameter_count counts all)."""
from torch import nn

from .inject import adapter_parameter_names, head_parameter_names


def count_parameters(model: nn.Module) -> dict:
    """{'adapter', 'head', 'other_trainable', 'trainable', 'total'}: numbers of parameters.

    `adapter` counts adapter branches whether or not they train; `trainable` counts requires_grad;
    `other_trainable` is what trains outside adapters and head (the backbone, in full fine-tuning).
    """
    params = dict(model.named_parameters())
    adapter, head = set(adapter_parameter_names(model)), set(head_parameter_names(model))
    trainable = {n for n, p in params.items() if p.requires_grad}
    size = lambda names: sum(params[n].numel() for n in names)
    return {
        "adapter": size(adapter),
        "head": size(head),
        "other_trainable": size(trainable - adapter - head),
        "trainable": size(trainable),
        "total": size(params),
    }
