import dataclasses

import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

import aurora_vision as av
from aurora_vision.layers import AdapterLinear, LoraLinear

from fixtures import tiny_input, tiny_model

PRESETS = ["qv", "qkv", "attn", "mlp", "all"]


@pytest.mark.parametrize("method", ["lora", "aurora"])
@pytest.mark.parametrize("targets", PRESETS)
def test_exact_at_init(family, method, targets):
    base = tiny_model(family).eval()
    x = tiny_input(family)
    with torch.no_grad():
        expected = base(x)
        adapted = av.apply(tiny_model(family), method, targets=targets).eval()
        assert torch.equal(adapted(x), expected)
    assert any(isinstance(m, AdapterLinear) for m in adapted.modules())


@pytest.mark.parametrize("method", ["full", "linear", "lora", "aurora"])
def test_gradients_reach_exactly_the_method_parameters(family, method):
    model = av.apply(tiny_model(family), method, **({"targets": "all"} if method in ("lora", "aurora") else {}))
    with torch.no_grad():  # B = 0 and some zero-init norms and heads (Swin V2) would block gradients
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model(tiny_input(family)).square().sum().backward()
    heads = av.inject.head_parameter_names(model)
    adapters = av.inject.adapter_parameter_names(model)
    expected = {"full": {n for n, _ in model.named_parameters()}, "linear": set(heads),
                "lora": set(heads) | set(adapters), "aurora": set(heads) | set(adapters)}[method]
    got = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == expected
    assert got == expected, sorted(got ^ expected)


def test_targets_never_include_head_or_patch_embed(family):
    model = tiny_model(family)
    names = [t.name for t in av.resolve_targets(model, r".*")]
    assert names and not any(n.startswith("head") or "patch_embed" in n for n in names)


def test_qv_slices_of_fused_qkv():
    model = av.apply(tiny_model("vit"), "aurora")  # paper default: q and v
    layers = dict(av.adapter_layers(model))
    assert sorted(layers) == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]
    assert layers["blocks.0.attn.qkv"].slices == [(0, 32), (64, 96)]


def test_paper_parameter_counts_on_vit_base_shape():
    """ViT-B/16, q and v: AuroRA r=2 has 24 x (2 x (768 + 768) + 20) = 74,208; LoRA r=8 294,912."""
    aurora = timm.create_model("vit_base_patch16_224", num_classes=100, aurora=True)
    assert av.count_parameters(aurora)["adapter"] == 24 * (2 * (768 + 768) + 20) == 74_208
    assert av.count_parameters(aurora)["head"] == 768 * 100 + 100
    lora = av.apply(timm.create_model("vit_base_patch16_224", num_classes=100), "lora", r=8)
    counts = av.count_parameters(lora)
    assert counts["adapter"] == 294_912
    assert counts["trainable"] == 294_912 + 76_900 and counts["other_trainable"] == 0


def test_timm_keyword_takes_true_dict_or_config():
    m = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1, embed_dim=32,
                          num_heads=2, num_classes=3, aurora=dict(r=4, targets="attn"))
    assert av.applied_method(m)["config"]["r"] == 4
    assert len(list(av.adapter_layers(m))) == 2
    m = timm.create_model("swin_tiny_patch4_window7_224", img_size=32, window_size=4, embed_dim=16,
                          depths=(1, 1), num_heads=(1, 2), num_classes=3, aurora=av.AuroraConfig(r=3))
    assert {l.r for _, l in av.adapter_layers(m)} == {3}
    assert av.applied_method(timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1,
                                               embed_dim=32, num_heads=2, aurora=True))["method"] == "aurora"


def test_pretrained_overlay_file_still_loads_strictly(tmp_path):
    """Weights load before adapters are added, so a local file via pretrained_cfg_overlay works."""
    kw = dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2, num_classes=0)
    src = timm.create_model("vit_tiny_patch16_224", **kw)
    save_file(src.state_dict(), str(tmp_path / "w.safetensors"))
    model = timm.create_model("vit_tiny_patch16_224", pretrained=True, aurora=True,
                              pretrained_cfg_overlay=dict(file=str(tmp_path / "w.safetensors")), **kw)
    x = tiny_input()
    with torch.no_grad():
        assert torch.equal(model.eval()(x), src.eval()(x))


def test_unknown_method_lists_known():
    with pytest.raises(KeyError, match="known methods: aurora, bitfit, dora, fourierft, full, linear, lora, peft-lora, vera"):
        av.apply(tiny_model(), "lorax")


def test_unknown_config_field_names_fields():
    with pytest.raises(TypeError, match="no field"):
        av.apply(tiny_model(), "aurora", rank=2)


def test_pattern_matching_nothing_lists_candidates():
    with pytest.raises(ValueError, match=r"matches no Linear.*blocks\.0\.attn\.qkv"):
        av.apply(tiny_model(), "lora", targets=r".*\.attn\.query")


def test_pattern_matching_only_the_head_is_an_error():
    with pytest.raises(ValueError, match="matches no Linear"):
        av.apply(tiny_model(), "lora", targets="head")


def test_unsupported_architecture_names_supported():
    with pytest.raises(TypeError, match="supported families: vit.*swin"):
        av.apply(timm.create_model("resnet18", num_classes=3), "lora")


def test_applying_twice_raises():
    model = av.apply(tiny_model(), "lora")
    with pytest.raises(RuntimeError, match="already"):
        av.apply(model, "aurora")


def test_list_methods():
    assert set(av.list_methods()) >= {"full", "linear", "lora", "aurora"}


def test_model_level_merge(family):
    model = av.apply(tiny_model(family), "lora", targets="all").eval()
    for _, layer in av.adapter_layers(model):
        nn.init.normal_(layer.B, std=0.1)
    x = tiny_input(family)
    with torch.no_grad():
        y = model(x)
        av.merge(model)
        assert torch.allclose(model(x), y, atol=1e-5)
        av.unmerge(model)
        assert torch.allclose(model(x), y, atol=1e-5)


@pytest.mark.parametrize("method", ["lora", "aurora"])
def test_merge_and_unload_gives_plain_base_structure(family, method):
    model = av.apply(tiny_model(family), method, targets="all").eval()
    for _, layer in av.adapter_layers(model):
        nn.init.normal_(layer.B, std=0.1)
    x = tiny_input(family)
    with torch.no_grad():
        av.merge(model, approximate=True)
        merged = model(x)
        av.merge_and_unload(model, approximate=True)
        assert torch.allclose(model(x), merged, atol=1e-6)
    assert not list(av.adapter_layers(model))
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in tiny_model(family).parameters())


TARGETED = [m for m in av.list_methods() if issubclass(av.get_method(m).config_cls, av.config.TargetedConfig)]
RANKED = [m for m in TARGETED if "alpha" in {f.name for f in dataclasses.fields(av.get_method(m).config_cls)}]


def test_every_adapter_method_validates_its_config():
    assert set(TARGETED) == {"aurora", "dora", "fourierft", "lora", "peft-lora", "vera"}
    assert set(RANKED) == {"aurora", "dora", "lora", "peft-lora"}


@pytest.mark.parametrize("method", TARGETED)
@pytest.mark.parametrize("targets", [[], "", [".*qkv", 3], None])
def test_targets_must_be_a_string_or_list_of_strings(method, targets):
    with pytest.raises(ValueError, match="targets must be"):
        av.config.make_config(av.get_method(method).config_cls, targets=targets)


@pytest.mark.parametrize("method", RANKED)
@pytest.mark.parametrize("field,value", [("alpha", 0), ("alpha", -1.0), ("r", 0), ("r", 2.0), ("dropout", 1.0)])
def test_rank_alpha_dropout_checked_for_every_low_rank_method(method, field, value):
    with pytest.raises(ValueError, match=f"{field} must be"):
        av.config.make_config(av.get_method(method).config_cls, **{field: value})


def test_a_new_config_field_reaches_the_layer_without_editing_methods():
    @dataclasses.dataclass
    class ScaledConfig(av.LoraConfig):
        extra_scale: float = 3.0

    class ScaledLora(LoraLinear):
        def __init__(self, base_layer, extra_scale: float = 1.0, **kwargs):
            super().__init__(base_layer, **kwargs)
            self.extra_scale = extra_scale

    model = tiny_model()
    av.methods.inject(model, ScaledLora, ScaledConfig(r=3, extra_scale=5.0, targets="mlp"))
    layers = dict(av.adapter_layers(model))
    assert sorted(layers) == ["blocks.0.mlp.fc1", "blocks.0.mlp.fc2", "blocks.1.mlp.fc1", "blocks.1.mlp.fc2"]
    assert {(l.extra_scale, l.r) for l in layers.values()} == {(5.0, 3)}
