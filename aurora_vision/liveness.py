"""The apply-time check that every adapter layer is live: the model's forward calls it, and the model's output
depends on its trainable parameters. A wrapped layer that the forward never calls (a block that reads
`layer.weight` itself, as `F.linear(x, qkv.weight, bias)`) would train nothing while counting as trained.

The check runs the forward once on the meta device (shapes only, no arithmetic; the real weights untouched,
every parameter and buffer swapped for a meta copy) and walks its autograd graph, so its cost is the
dispatch of the model's ops (about 0.1 s for a ViT-B on a CPU), not their arithmetic, wherever the weights live."""
from functools import partial

import torch
from torch import nn
from torch.func import functional_call

from .inject import is_adapter_layer, patch_embedding

SHOWN = 4  # names listed in an error before "..."


def example_input(model: nn.Module) -> torch.Tensor:
    """One image of the size and channels the model's patch embedding was built for, on the meta device."""
    embedding = patch_embedding(model)
    # the first convolution of the embedding (PatchEmbed's proj, or a hybrid embedding's backbone stem) reads the image
    conv = next(m for m in embedding.modules() if isinstance(m, nn.Conv2d))
    size = getattr(embedding, "img_size", None) or model.pretrained_cfg["input_size"][1:]
    return torch.empty(1, conv.in_channels, *size, device="meta", dtype=conv.weight.dtype)


def _tensors(outputs) -> list:
    """The tensors of a timm model's output: a tensor, or a features_only model's list or dict of them."""
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _meta_state(model: nn.Module) -> tuple[dict, dict]:
    """Meta copies of the model's tensors, by the original's id, and functional_call's {path: copy} for them.
    Every module is swapped once under its first path (`tie_weights=False`): functional_call's untying swaps
    a module shared by several layers (peft VeRA's projections) once per path, and puts back the wrong tensor."""
    copies, state = {}, {}
    for prefix, module in model.named_modules():  # each module once, shared ones included
        for key, tensor in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
            if id(tensor) not in copies:
                copies[id(tensor)] = torch.empty_like(tensor, device="meta").requires_grad_(tensor.requires_grad)
            state[f"{prefix}.{key}" if prefix else key] = copies[id(tensor)]
    return copies, state


def _leaves(roots) -> set[int]:
    """Ids of the tensors whose gradient the autograd graph from `roots` accumulates: the parameters that a
    backward from the output would reach (walked instead of run: meta kernels cost more than the walk)."""
    seen, stack, leaves = set(), [node for node in roots if node is not None], set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if hasattr(node, "variable"):  # an AccumulateGrad node: the leaf tensor it feeds
            leaves.add(id(node.variable))
        stack += [child for child, _ in node.next_functions if child is not None]
    return leaves


def _mark(called: set, name: str, module, args) -> None:
    called.add(name)


class _Probe(nn.Module):
    """The model's forward, then which of `params` its output reaches, inside functional_call's swap: a backward
    that recomputes a checkpointed segment then runs on the meta copies too."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, params: list) -> set[int]:
        outputs = _tensors(self.model(x))
        reached = _leaves(t.grad_fn for t in outputs)
        hidden = [p for p in params if id(p) not in reached]
        outputs = [t for t in outputs if t.requires_grad]
        if hidden and outputs:
            # reentrant checkpointing (timm's set_reentrant_ckpt) builds a segment's graph only when its backward
            # recomputes it: ask the backward itself (.backward: reentrant checkpointing refuses autograd.grad)
            sum(t.float().sum() for t in outputs).backward()
            reached |= {id(p) for p in hidden if p.grad is not None}
        return reached


def dead_adapters(model: nn.Module) -> tuple[list[str], list[str]]:
    """(adapter layers that the forward never calls, trainable parameters of the called ones that get no
    gradient from the output), from one forward on the meta device in eval mode and its autograd graph (and
    a backward where the graph hides a parameter)."""
    layers = {name: module for name, module in model.named_modules() if is_adapter_layer(module)}
    if not layers:
        return [], []
    copies, state = _meta_state(model)
    trainable = [copies[id(p)] for layer in layers.values() for p in layer.parameters() if p.requires_grad]
    called, modes = set(), [(m, m.training) for m in model.modules()]
    hooks = [layer.register_forward_pre_hook(partial(_mark, called, name)) for name, layer in layers.items()]
    model.eval()  # what every mode runs: no dropout or stochastic depth skipping a block at random
    try:
        with torch.inference_mode(False), torch.enable_grad():
            reached = functional_call(_Probe(model), {f"model.{k}": v for k, v in state.items()},
                                      (example_input(model), trainable), tie_weights=False)
    finally:
        for hook in hooks:
            hook.remove()
        for module, mode in modes:
            module.training = mode
    never_called = [name for name in layers if name not in called]
    no_gradient = [f"{name}.{p}" for name in layers if name in called
                   for p, param in layers[name].named_parameters()
                   if param.requires_grad and id(copies[id(param)]) not in reached]
    return never_called, no_gradient


def _listed(names: list[str]) -> str:
    return ", ".join(names[:SHOWN]) + (f", ... ({len(names)} in all)" if len(names) > SHOWN else "")


def check_live(model: nn.Module, method: str) -> None:
    """Raise a ValueError naming every adapter layer of `method` that would train nothing on `model`."""
    never_called, no_gradient = dead_adapters(model)
    model_name = type(model).__name__
    if never_called:
        raise ValueError(
            f"method {method!r}: {model_name}'s forward never calls the adapted layers {_listed(never_called)} (a "
            "block reads their weights itself, e.g. F.linear(x, qkv.weight, bias), or they sit in a branch this model "
            "does not run), so their adapters would train nothing; choose other targets")
    if no_gradient:
        raise ValueError(
            f"method {method!r}: {model_name}'s output does not depend on the trainable parameters "
            f"{_listed(no_gradient)} (their layers run, but their output is detached or discarded), so they would "
            "train nothing; choose other targets")
