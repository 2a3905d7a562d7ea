import json

import pytest
import torch
from torch import nn

import aurora_vision as av

from conftest import tiny_input, tiny_model


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
