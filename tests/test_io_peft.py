"""peft's LoRA folder format: our lora saved with format="peft" loads in peft with the same logits, and a
LoRA that peft saved loads into a timm model as our lora with the same logits."""
import json

import pytest
import timm
import torch
from safetensors.torch import load_file
from torch import nn

import aurora_vision as av

import fixtures
from fixtures import tiny_input, tiny_model

peft = pytest.importorskip("peft")


def trained_lora(family="vit", **kw):
    model = av.apply(tiny_model(family), "lora", **kw).eval()
    with torch.no_grad():  # B = 0 at init: without this the adapter would not change the outputs
        for _, layer in av.adapter_layers(model):
            nn.init.normal_(layer.B, std=0.2)
        model.get_submodule(av.targets.classifier_names(model)[0]).weight.normal_()
    return model


def deeper_vit():
    name, arch = fixtures.TINY["vit"]
    return timm.create_model(name, num_classes=5, **{**arch, "depth": 3})


def logits(model, family="vit"):
    with torch.no_grad():
        return model.eval()(tiny_input(family))


@pytest.mark.parametrize("family", ["vit", "swin"])
@pytest.mark.parametrize("kw", [dict(targets="qv", r=2, alpha=4.0), dict(targets="qkv", r=4, alpha=8.0),
                                dict(targets="mlp", r=3, alpha=6.0, use_rslora=True),
                                dict(targets="qv", r=2, alpha=3.0, use_rslora=True)])
def test_our_lora_loads_in_peft_with_the_same_logits(tmp_path, family, kw):
    ours = trained_lora(family, **kw)
    av.save_adapter(ours, tmp_path / "p", format="peft")
    theirs = peft.PeftModel.from_pretrained(tiny_model(family), tmp_path / "p")
    expected = logits(ours, family)
    assert not torch.allclose(expected, logits(tiny_model(family), family), atol=1e-3)  # the adapter matters
    assert torch.allclose(logits(theirs, family), expected, atol=1e-5)


def test_peft_folder_holds_peft_keys_and_a_rank_2r_lora_for_q_and_v(tmp_path):
    ours = trained_lora(targets="qv", r=2, alpha=4.0)
    av.save_adapter(ours, tmp_path / "p", format="peft")
    config = json.loads((tmp_path / "p" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4 and config["lora_alpha"] == 8.0
    assert sorted(config["target_modules"]) == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]
    assert config["modules_to_save"] == ["head"]
    tensors = load_file(str(tmp_path / "p" / "adapter_model.safetensors"))
    assert set(tensors) == {f"base_model.model.blocks.{i}.attn.qkv.lora_{f}.weight" for i in (0, 1) for f in "AB"} | {
        "base_model.model.head.weight", "base_model.model.head.bias"}
    b = tensors["base_model.model.blocks.0.attn.qkv.lora_B.weight"]
    assert b.shape == (96, 4) and not b[32:64].any()  # k rows get nothing
    assert b[:32, 2:].abs().sum() == 0 and b[64:, :2].abs().sum() == 0  # q uses the first A, v the second


def test_our_peft_folder_reads_back_into_our_lora(tmp_path):
    ours = trained_lora(targets="qv", r=2, alpha=4.0)
    av.save_adapter(ours, tmp_path / "p", format="peft")
    back = av.load_adapter(tiny_model(), tmp_path / "p")
    assert av.applied_method(back)["config"]["r"] == 4  # one rank-2r LoRA on each whole qkv
    assert torch.allclose(logits(back), logits(ours), atol=1e-5)


@pytest.mark.parametrize("method", ["aurora", "full", "linear"])
def test_peft_format_refuses_other_methods(tmp_path, method):
    model = av.apply(tiny_model(), method)
    with pytest.raises(ValueError, match="has no peft format" if method == "aurora" else "writes our 'lora'"):
        av.save_adapter(model, tmp_path / "p", format="peft")
    assert not (tmp_path / "p").exists()


def test_unknown_format_lists_formats(tmp_path):
    with pytest.raises(ValueError, match=r"unknown adapter format 'hf'; formats: \['aurora_vision', 'peft'\]"):
        av.save_adapter(av.apply(tiny_model(), "lora"), tmp_path / "p", format="hf")


def peft_saved(tmp_path, family="vit", **kw):
    config = peft.LoraConfig(**{"r": 4, "lora_alpha": 8, "target_modules": ["qkv"], "modules_to_save": ["head"], **kw})
    model = peft.get_peft_model(tiny_model(family), config)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad:
                p.normal_(std=0.2)
    model.save_pretrained(tmp_path / "peft")
    return model, tmp_path / "peft"


@pytest.mark.parametrize("kw", [{}, dict(target_modules=r".*\.mlp\.fc\d", use_rslora=True, lora_alpha=5),
                                dict(target_modules=["qkv", "proj"], exclude_modules=["patch_embed.proj"]),
                                dict(modules_to_save=None), dict(layers_to_transform=[1], layers_pattern="blocks")])
def test_a_peft_lora_loads_into_a_timm_model_with_the_same_logits(tmp_path, kw):
    theirs, folder = peft_saved(tmp_path, **kw)
    ours = av.load_adapter(tiny_model(), folder)
    assert av.applied_method(ours)["method"] == "lora"
    expected = logits(theirs)
    assert not torch.allclose(expected, logits(tiny_model()), atol=1e-3)
    assert torch.allclose(logits(ours), expected, atol=1e-5)


def test_a_peft_lora_on_swin_loads_with_the_same_logits(tmp_path):
    theirs, folder = peft_saved(tmp_path, "swin", modules_to_save=["head.fc"])
    ours = av.load_adapter(tiny_model("swin"), folder)
    assert torch.allclose(logits(ours, "swin"), logits(theirs, "swin"), atol=1e-5)


def test_peft_lora_into_a_deeper_model_names_the_missing_factors(tmp_path):
    _, folder = peft_saved(tmp_path)
    deeper = deeper_vit()
    with pytest.raises(ValueError, match=r"lacks 2 .*blocks\.2\.attn\.qkv\.A, blocks\.2\.attn\.qkv\.B"):
        av.load_adapter(deeper, folder)


def test_our_peft_folder_refuses_another_depth(tmp_path):
    av.save_adapter(trained_lora(targets="qkv"), tmp_path / "p", format="peft")
    with pytest.raises(ValueError, match="2 blocks.*this model has 3 blocks"):
        av.load_adapter(deeper_vit(), tmp_path / "p")


@pytest.mark.parametrize("kw,message", [
    (dict(use_dora=True), r"\['use_dora'\]"),
    (dict(bias="lora_only"), r"\['bias'\]"),
    (dict(init_lora_weights="pissa"), r"init_lora_weights='pissa' \(it changes the base weights\)"),
    (dict(rank_pattern={"blocks.1.attn.qkv": 2}), "different ranks or alphas"),
    (dict(target_modules=["qkv", "patch_embed.proj"]), r"targets \['patch_embed.proj'\]"),
    (dict(modules_to_save=["head", "norm"]), r"covers \['blocks.0.attn.k_norm', .*'norm'.*outside the classifier"),
])
def test_peft_options_our_lora_lacks_are_refused_by_name(tmp_path, kw, message):
    _, folder = peft_saved(tmp_path, **kw)
    with pytest.raises(ValueError, match=message):
        av.load_adapter(tiny_model(), folder)


def test_other_peft_types_are_refused(tmp_path):
    model = peft.get_peft_model(tiny_model(), peft.VeraConfig(r=8, target_modules=["qkv"]))
    model.save_pretrained(tmp_path / "vera")
    with pytest.raises(ValueError, match="peft 'VERA' adapter; load_adapter reads peft LoRA folders only"):
        av.load_adapter(tiny_model(), tmp_path / "vera")


def test_a_peft_lora_loads_into_a_model_that_has_the_same_lora_already(tmp_path):
    theirs, folder = peft_saved(tmp_path)
    names = [r"blocks\.0\.attn\.qkv", r"blocks\.1\.attn\.qkv"]
    ours = av.load_adapter(av.apply(tiny_model(), "lora", r=4, alpha=8.0, targets=names), folder)
    assert torch.allclose(logits(ours), logits(theirs), atol=1e-5)
    with pytest.raises(ValueError, match=r"adapter in .* is lora .*'r': 4.*model has lora .*'r': 2"):
        av.load_adapter(av.apply(tiny_model(), "lora", r=2, alpha=8.0, targets=names), folder)
