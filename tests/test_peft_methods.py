"""The peft baselines and BitFit: they train, only their parameters get gradients, checkpoints round-trip,
and our LoRA equals peft's LoRA for the same configuration."""
import pytest
import torch
import torch.nn.functional as F

import aurora_vision as av
from aurora_vision.inject import adapter_parameter_names, head_parameter_names
from aurora_bench.run.flops import count_macs

from fixtures import tiny_input, tiny_model

pytest.importorskip("peft")

SMALL = {"peft-lora": {"r": 4}, "dora": {"r": 4}, "fourierft": {"n_frequency": 64, "scaling": 10.0},
         "vera": {"r": 8}, "bitfit": {}}


def perturbed(model):
    with torch.no_grad():  # zero-initialised branches (lora_B, spectra) would block gradients
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.parametrize("method", sorted(SMALL))
@pytest.mark.parametrize("family", ["vit", "swin"])
def test_trains_only_its_parameters(method, family):
    model = perturbed(av.apply(tiny_model(family), method, SMALL[method]))
    x, y = tiny_input(family, batch=4), torch.tensor([0, 1, 2, 3])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(5):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    heads = set(head_parameter_names(model))
    expected = heads | ({n for n, _ in model.named_parameters() if n.endswith(".bias")} if method == "bitfit"
                        else set(adapter_parameter_names(model)))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == expected and trainable - heads
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == expected


@pytest.mark.parametrize("method", sorted(SMALL))
def test_checkpoint_round_trip(tmp_path, method):
    model = perturbed(av.apply(tiny_model(), method, SMALL[method])).eval()
    av.save_adapter(model, tmp_path / "a")
    fresh = av.load_adapter(tiny_model(), tmp_path / "a").eval()
    x = tiny_input()
    with torch.no_grad():
        assert torch.allclose(fresh(x), model(x), atol=1e-6)


@pytest.mark.parametrize("method", sorted(SMALL))
def test_macs_counted(method):
    got = count_macs(av.apply(tiny_model(), method, SMALL[method]), 32)
    base = count_macs(tiny_model(), 32)
    assert got["gmacs"] >= base["gmacs"] > 0


@pytest.mark.parametrize("targets", ["qkv", "all", r".*\.mlp\.fc2"])
def test_our_lora_equals_peft_lora(targets):
    ours = av.apply(tiny_model(), "lora", r=4, alpha=8, targets=targets)
    theirs = av.apply(tiny_model(), "peft-lora", r=4, alpha=8, targets=targets)
    assert av.count_parameters(ours) == av.count_parameters(theirs)
    with torch.no_grad():
        for name, layer in av.adapter_layers(ours):
            peft_layer = theirs.get_submodule(name)
            peft_layer.lora_A["default"].weight.copy_(layer.A[0])
            layer.B.normal_()
            peft_layer.lora_B["default"].weight.copy_(layer.B[0])
        x = tiny_input()
        assert torch.allclose(ours.eval()(x), theirs.eval()(x), atol=1e-5)


def test_qv_preset_is_refused_by_peft_methods():
    with pytest.raises(ValueError, match="targets='qkv'"):
        av.apply(tiny_model(), "peft-lora", targets="qv")


def test_peft_target_matching_nothing_lists_candidates():
    with pytest.raises(ValueError, match="matches no Linear"):
        av.apply(tiny_model(), "dora", targets=r".*\.query")
