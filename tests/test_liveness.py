"""Every adapter is live in every family it claims: over the registry (each supported family x target preset x
method) each adapted layer runs in the forward, moves the output when its parameters move, and gets the loss's
gradient; and `apply` refuses, by name, an adapted layer that the forward never runs or never depends on."""
import copy
from dataclasses import fields

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.layers import Attention, set_reentrant_ckpt, use_reentrant_ckpt

import aurora_vision as av
from aurora_vision.inject import head_parameter_names, is_adapter_layer
from aurora_vision.registry import get_method
from aurora_vision.targets import PRESETS

from fixtures import tiny_input, tiny_model

pytest.importorskip("peft")

SMALL = {"vera": dict(r=4), "fourierft": dict(n_frequency=16)}  # peft's defaults exceed a 16-wide tiny model


def targeted(method: str) -> bool:
    return any(f.name == "targets" for f in fields(get_method(method).config_cls))


def peft_method(method: str) -> bool:
    return get_method(method).apply.__module__ == "aurora_vision.peft_methods"


def slices(preset) -> bool:
    return preset is not None and any(parts is not None for parts in PRESETS[preset].values())


# peft adapts whole modules: its methods refuse the q/v slices preset (test_peft_methods.py), so it is left out here
CASES = [(method, preset) for method in av.list_methods() for preset in (sorted(PRESETS) if targeted(method) else [None])
         if not (peft_method(method) and slices(preset))]
TARGETED = [method for method in av.list_methods() if targeted(method)]


def lively(model):
    """Move every base weight off its initial value: SwinV2's res-post-norm weights start at zero (each block
    an identity) and DINOv2's LayerScale at 1e-5, which would hide a dead adapter as well as a live one."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def perturb(params) -> None:
    with torch.no_grad():
        for p in params:
            p.add_(0.1 * torch.randn_like(p))


@pytest.mark.parametrize("method,preset", CASES, ids=[f"{m}-{p}" if p else m for m, p in CASES])
def test_every_adapted_layer_is_live(family, method, preset):
    """Each adapted layer runs in the forward; moving the method's parameters moves the output; and the loss's
    gradient is nonzero on every one of them (up- and down-projections alike: so moving any one of them alone
    moves the output too)."""
    torch.manual_seed(0)
    model = lively(tiny_model(family))
    av.apply(model, method, **({"targets": preset} if preset else {}), **SMALL.get(method, {}))
    model.eval()
    x, y = tiny_input(family), torch.tensor([0, 1])
    heads = set(head_parameter_names(model))
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad and n not in heads}
    layers = {n: m for n, m in model.named_modules() if is_adapter_layer(m)}
    assert bool(layers) == (preset is not None) and bool(trainable) == (method != "linear")

    called = set()
    hooks = [m.register_forward_pre_hook(lambda *_, n=n: called.add(n)) for n, m in layers.items()]
    with torch.no_grad():
        before = model(x)
    for hook in hooks:
        hook.remove()
    assert called == set(layers)

    perturb(trainable.values())  # B != 0 (LoRA, AuroRA), lambda_b != 0 (VeRA): else A's gradient is zero by design
    out = model(x)
    assert method == "linear" or (out - before).abs().max() > 1e-4
    F.cross_entropy(out, y).backward()
    no_gradient = [n for n, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_gradient, f"{method} {preset}: no gradient reaches {no_gradient}"
    for name, layer in layers.items():  # all of a layer's trainable parameters are the method's, none stray
        assert any(p.requires_grad for p in layer.parameters()), name


@pytest.mark.parametrize("method", ["lora", "peft-lora"])
def test_swinv2_qkv_runs_through_its_module_with_the_same_output(method):
    base = lively(tiny_model("swinv2")).eval()
    assert base.layers[0].blocks[0].attn.q_bias is not None  # the q/v-bias form that reads qkv.weight by default
    x = tiny_input("swinv2")
    with torch.no_grad():
        expected = base(x)
        adapted = av.apply(base, method, targets="qkv")  # B = 0: the same function, qkv now called as a module
        assert torch.allclose(adapted(x), expected, atol=1e-6)


class WeightReadingAttention(Attention):
    """Attention that computes qkv from `qkv.weight` itself, as timm's BEiT does: it never calls `qkv`."""

    def forward(self, x, attn_mask=None, **kwargs):
        B, N, C = x.shape
        qkv = F.linear(x, self.qkv.weight, self.qkv.bias)
        q, k, v = qkv.reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C))


class DetachingAttention(Attention):
    """Attention that runs `qkv` without autograd (a frozen feature, say): the layer runs, its output is constant."""

    def forward(self, x, attn_mask=None, **kwargs):
        B, N, C = x.shape
        with torch.no_grad():
            qkv = self.qkv(x)
        q, k, v = qkv.reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C))


@pytest.mark.parametrize("method", TARGETED)
def test_a_layer_the_forward_never_calls_is_refused_by_name(method):
    model = tiny_model("vit", attn_layer=WeightReadingAttention)
    with pytest.raises(ValueError, match=r"never calls the adapted layers blocks\.0\.attn\.qkv, blocks\.1\.attn\.qkv"):
        av.apply(model, method, targets="qkv", **SMALL.get(method, {}))
    assert av.apply(tiny_model("vit", attn_layer=WeightReadingAttention), method, targets="attn.proj|.*mlp.fc1",
                    **SMALL.get(method, {}))  # the layers it does call take adapters as before


@pytest.mark.parametrize("method", TARGETED)
def test_a_layer_whose_output_is_detached_is_refused_by_name(method):
    model = tiny_model("vit", attn_layer=DetachingAttention)
    with pytest.raises(ValueError, match=r"does not depend on the trainable parameters blocks\.0\.attn\.qkv\."):
        av.apply(model, method, targets="qkv", **SMALL.get(method, {}))


def test_the_check_leaves_weights_devices_and_modes_as_they_were():
    model = tiny_model("swin").train()
    av.apply(model, "vera", targets="qkv", **SMALL["vera"])  # its projections are shared by every layer
    assert all(t.device.type == "cpu" for t in [*model.parameters(), *model.buffers()])
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize("reentrant", [False, True])
@pytest.mark.parametrize("family", ["vit", "swin"])
def test_gradient_checkpointing_on_before_apply_is_no_dead_adapter(family, reentrant):
    before = use_reentrant_ckpt()
    set_reentrant_ckpt(reentrant)  # reentrant: a segment's graph exists only once its backward recomputes it
    try:
        model = tiny_model(family)
        model.set_grad_checkpointing(True)
        for method in ("lora", "peft-lora"):
            av.apply(copy.deepcopy(model), method, targets="qkv")
    finally:
        set_reentrant_ckpt(before)


@pytest.mark.parametrize("name,kwargs", [
    ("beit_base_patch16_224", dict(img_size=32, patch_size=8, depth=1, embed_dim=16, num_heads=2)),
    ("eva02_tiny_patch14_224", dict(img_size=28, patch_size=7, depth=1, embed_dim=16, num_heads=2)),
])
def test_families_that_read_qkv_weight_are_refused_by_name(name, kwargs):
    model = timm.create_model(name, pretrained=False, num_classes=3, **kwargs)
    with pytest.raises(TypeError, match=f"does not support {type(model).__name__} models"):
        av.apply(model, "lora", targets="qkv")
