import json
import re

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from torch._dynamo.eval_frame import OptimizedModule

import aurora_vision as av

import fixtures
from fixtures import tiny_input, tiny_model


def trained_like(model):
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.mark.parametrize("method,kw", [("aurora", {}), ("lora", {"r": 4, "targets": "all"}), ("linear", {}),
                                       ("full", {})])
def test_save_load_gives_identical_logits(tmp_path, family, method, kw):
    model = trained_like(av.apply(tiny_model(family), method, **kw)).eval()
    av.save_adapter(model, tmp_path / "adapter")
    fresh = tiny_model(family)  # method applied from the saved config
    av.load_adapter(fresh, tmp_path / "adapter")
    x = tiny_input(family)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), model(x))
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved["method"] == method and saved["base_model"] == av.io.base_model_name(model)


def test_checkpoint_holds_only_trainable_tensors(tmp_path):
    model = av.apply(tiny_model(), "aurora")
    av.save_adapter(model, tmp_path / "a")
    saved = json.loads((tmp_path / "a" / "adapter_config.json").read_text())["tensors"]
    assert set(saved) == {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any("base_layer" in n for n in saved)


def test_load_rejects_other_base_model(tmp_path):
    av.save_adapter(av.apply(tiny_model("vit"), "aurora"), tmp_path / "a")
    with pytest.raises(ValueError, match="trained on 'vit_tiny_patch16_224.*model is 'swin_tiny"):
        av.load_adapter(tiny_model("swin"), tmp_path / "a")


def test_load_rejects_other_shapes(tmp_path):
    av.save_adapter(av.apply(tiny_model(num_classes=5), "aurora"), tmp_path / "a")
    with pytest.raises(ValueError, match=r"head.(weight|bias).*shape \(5,.*expects \(7,"):
        av.load_adapter(tiny_model(num_classes=7), tmp_path / "a")


def test_load_rejects_other_method_config(tmp_path):
    av.save_adapter(av.apply(tiny_model(), "aurora"), tmp_path / "a")
    with pytest.raises(ValueError, match="adapter in"):
        av.load_adapter(av.apply(tiny_model(), "aurora", r=4), tmp_path / "a")


def test_load_missing_folder_says_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        av.load_adapter(tiny_model(), tmp_path / "nothing")


def test_save_refuses_merged(tmp_path):
    model = av.apply(tiny_model(), "lora")
    av.merge(model)
    with pytest.raises(RuntimeError, match="unmerge"):
        av.save_adapter(model, tmp_path / "a")


def test_save_refuses_unloaded(tmp_path):
    """merge_and_unload gives back a plain timm model: no method left to save."""
    model = av.apply(tiny_model(), "lora")
    av.merge_and_unload(model)
    with pytest.raises(ValueError, match="no aurora_vision method is applied"):
        av.save_adapter(model, tmp_path / "a")


def saved_lora(tmp_path, family="vit", **kw):
    model = trained_like(av.apply(tiny_model(family, **kw), "lora", r=2)).eval()
    return model, av.save_adapter(model, tmp_path / "a")


def edit_config(folder, change):
    file = folder / "adapter_config.json"
    data = json.loads(file.read_text())
    change(data)
    file.write_text(json.dumps(data))


def test_load_rejects_a_file_without_some_trainable_tensors(tmp_path):
    _, folder = saved_lora(tmp_path)
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    del tensors["blocks.1.attn.qkv.B"]
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    edit_config(folder, lambda d: d["tensors"].pop("blocks.1.attn.qkv.B"))
    with pytest.raises(ValueError, match=r"lacks 1 of the model's trainable parameters: blocks\.1\.attn\.qkv\.B"):
        av.load_adapter(tiny_model(), folder)


def test_load_rejects_weights_that_differ_from_the_config_listing(tmp_path):
    _, folder = saved_lora(tmp_path)
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    del tensors["head.bias"]
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    with pytest.raises(ValueError, match="does not hold the tensors .*adapter_config.json lists.*'head.bias'"):
        av.load_adapter(tiny_model(), folder)


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.to(torch.int8), r"is torch.int8, not floating point"),
    (lambda t: t > 0, r"is torch.bool, not floating point"),
    (lambda t: t.index_fill(0, torch.tensor([0]), float("nan")), r"holds \d+ non-finite value\(s\) \(NaN or inf\)"),
    (lambda t: t.index_fill(0, torch.tensor([1]), float("-inf")), r"holds \d+ non-finite value\(s\) \(NaN or inf\)"),
], ids=["int8", "bool", "nan", "inf"])
def test_load_refuses_tensors_that_are_not_finite_floats(tmp_path, edit, message):
    """int8 and bool tensors were cast silently into float parameters; NaN and inf loaded and gave NaN logits."""
    _, folder = saved_lora(tmp_path)
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    tensors["blocks.1.attn.qkv.B"] = edit(tensors["blocks.1.attn.qkv.B"])
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    fresh = tiny_model()
    with pytest.raises(ValueError, match=rf"adapter tensor 'blocks.1.attn.qkv.B' in .*adapter_model.safetensors {message}"):
        av.load_adapter(fresh, folder)
    assert getattr(fresh, av.registry.STATE_ATTR, None) is None  # refused before anything changed


def test_saved_targets_that_match_nothing_name_the_adapter_folder(tmp_path):
    _, folder = saved_lora(tmp_path)
    edit_config(folder, lambda d: d["config"].update(targets=r"blocks\.9\.attn\.qkv"))
    with pytest.raises(ValueError, match=rf"adapter in {re.escape(str(folder))} does not fit this model: target pattern .* matches no"):
        av.load_adapter(tiny_model(), folder)


@pytest.mark.parametrize("method", ["linear", "lora", "aurora", "full"])
@pytest.mark.parametrize("family,other", [("vit", dict(depth=3)), ("swin", dict(depths=(1, 2), num_heads=(1, 2)))])
def test_load_rejects_another_depth_under_the_same_name(tmp_path, method, family, other):
    av.save_adapter(trained_like(av.apply(tiny_model(family), method)), tmp_path / "a")
    name, arch = fixtures.TINY[family]
    torch.manual_seed(0)
    deeper = timm.create_model(name, num_classes=5, **{**arch, **other})
    with pytest.raises(ValueError, match=r"saved from a .* with 2 blocks.*this model has 3 blocks"):
        av.load_adapter(deeper, tmp_path / "a")
    assert getattr(deeper, av.registry.STATE_ATTR, None) is None  # refused before anything changed


def test_architecture_is_the_same_with_or_without_adapters(family):
    plain = av.io.architecture(tiny_model(family))
    for method in ("lora", "aurora", "full"):
        assert av.io.architecture(av.apply(tiny_model(family), method, **(
            {"targets": "all"} if method != "full" else {}))) == plain
    assert av.io.architecture(tiny_model(family, num_classes=9)) == plain  # the head is checked by shape


@pytest.mark.parametrize("change,message", [
    (lambda d: d.pop("method"), "lacks the key 'method'"),
    (lambda d: d.pop("base_model"), "lacks the key 'base_model'"),
    (lambda d: d["architecture"].pop("digest"), "lacks the key 'architecture.digest'"),
    (lambda d: d.update(tensors=[]), "'tensors' is .*expected dict"),
    (lambda d: d.update(num_classes="5"), "'num_classes' is '5', expected int or NoneType"),
    (lambda d: d.update(method="lorax"), "invalid method or config: unknown method 'lorax'"),
    (lambda d: d["config"].update(rank=3), "invalid method or config: LoraConfig has no field"),
    (lambda d: d["config"].update(alpha=-1), "invalid method or config: alpha must be"),
    (lambda d: d["tensors"].update({"head.bias": ["5"]}), "'tensors' must map names to shapes"),
])
def test_malformed_config_names_the_file_and_the_key(tmp_path, change, message):
    _, folder = saved_lora(tmp_path)
    edit_config(folder, change)
    with pytest.raises(ValueError, match=f"adapter_config.json.*{message}"):
        av.load_adapter(tiny_model(), folder)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", ""])
def test_config_that_is_not_a_json_object_is_a_clear_error(tmp_path, text):
    _, folder = saved_lora(tmp_path)
    (folder / "adapter_config.json").write_text(text)
    with pytest.raises(ValueError, match="adapter_config.json (is not valid JSON|holds a JSON list)"):
        av.load_adapter(tiny_model(), folder)


def test_damaged_weights_file_is_a_clear_error(tmp_path):
    _, folder = saved_lora(tmp_path)
    (folder / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    with pytest.raises(ValueError, match="adapter_model.safetensors is not a readable safetensors file"):
        av.load_adapter(tiny_model(), folder)


def test_compiled_model_saves_and_loads_under_plain_names(tmp_path):
    model, _ = saved_lora(tmp_path)
    compiled = torch.compile(model, backend="eager")
    assert isinstance(compiled, OptimizedModule)
    av.save_adapter(compiled, tmp_path / "c")
    names = set(load_file(str(tmp_path / "c" / "adapter_model.safetensors")))
    assert names == {n for n, p in model.named_parameters() if p.requires_grad}  # no `_orig_mod.` prefix
    x = tiny_input()
    with torch.no_grad():
        expected = model(x)
        plain = av.load_adapter(tiny_model(), tmp_path / "c").eval()
        assert torch.equal(plain(x), expected)
        into_compiled = av.load_adapter(torch.compile(tiny_model(), backend="eager"), tmp_path / "c")
        assert isinstance(into_compiled, OptimizedModule)
        assert av.applied_method(into_compiled)["method"] == "lora"
        assert torch.allclose(into_compiled.eval()(x), expected, atol=1e-6)
