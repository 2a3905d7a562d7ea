"""timm's own contracts with adapters on: features_only, meta init, FX, TorchScript, ONNX, reentrant
checkpointing, checkpoint_path and merge_and_unload. Each test randomises B, so that the adapters change
what they should (an all-zero B would pass most of these without any adapter)."""
import copy
import io
import re

import pytest
import timm
import timm.layers
import timm.models
import torch
from timm.models._features import FeatureGetterNet, FeatureListNet
from timm.models._manipulate import reinit_non_persistent_buffers

import aurora_vision as av
from aurora_vision.layers import AdapterLinear, AuroraLinear, LoraLinear
from aurora_vision.registry import STATE_ATTR

from fixtures import tiny_input, tiny_model

FAMILIES = ["vit", "swin"]
METHODS = ["aurora", "lora"]


def randomize(model, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in av.adapter_layers(model):
            layer.B.copy_(torch.randn(layer.B.shape, generator=generator) * 0.2)
    return model


def adapted(family: str, method: str = "aurora", **kwargs):
    """A tiny adapted model with random B; q/v slices (the default), so the sliced up-projection runs."""
    return randomize(av.apply(tiny_model(family, **kwargs), method))


# features_only

def features_key(name: str, wrapper) -> str:
    """A classifier model's state-dict key as timm's features_only wrapper names it."""
    if isinstance(wrapper, FeatureListNet):
        return re.sub(r"^layers\.(\d+)\.", r"layers_\1.", name)  # Swin's stages, flattened
    return "model." + name  # FeatureGetterNet keeps the model whole


@pytest.mark.parametrize("family", FAMILIES)
def test_features_only_equals_forward_intermediates(family):
    """`create_model(features_only=True, aurora=...)` adapts the same layers; with the classifier model's weights
    it returns that model's forward_intermediates."""
    full = adapted(family).eval()
    features = tiny_model(family, features_only=True, out_indices=(0, 1), aurora=True).eval()
    assert isinstance(features, (FeatureListNet, FeatureGetterNet))
    assert len(list(av.adapter_layers(features))) == len(list(av.adapter_layers(full))) == 2
    state = {features_key(k, features): v for k, v in full.state_dict().items()}
    assert set(features.state_dict()) <= set(state)  # every tensor of the backbone, adapters included, is loaded
    features.load_state_dict({k: v for k, v in state.items() if k in features.state_dict()})
    # no classifier runs in a backbone, so only the adapters train
    trainable = {n for n, p in features.named_parameters() if p.requires_grad}
    assert trainable == set(av.inject.adapter_parameter_names(features))

    x = tiny_input(family)
    with torch.no_grad():
        got = features(x)
        if getattr(features, "output_fmt", "NCHW") == "NHWC":  # Swin's FeatureListNet; its taps are NCHW
            got = [f.permute(0, 3, 1, 2) for f in got]
        expected = full.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
        plain = copy.deepcopy(full)
        for _, layer in av.adapter_layers(plain):
            layer.B.zero_()
        unadapted = plain.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
    assert len(got) == len(expected) == 2
    for g, e, u in zip(got, expected, unadapted):
        torch.testing.assert_close(g, e)
        assert not torch.allclose(g, u)  # the adapters do change the features


def test_features_only_refuses_fx_feature_wrapper():
    with pytest.raises(TypeError, match="feature_cls='fx'"):
        tiny_model("swin", features_only=True, feature_cls="fx", aurora=True)


# meta device, device= and dtype=

@pytest.mark.parametrize("family", FAMILIES)
def test_create_model_on_meta_device(family):
    model = randomize(tiny_model(family, device="meta", aurora=True))
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    assert {t.device.type for t in tensors.values()} == {"meta"}
    assert any(".sigma." in n for n in tensors)  # the nonlinearity's tensors too
    x = tiny_input(family).to("meta")
    assert model(x).shape == (2, 5)
    with torch.no_grad():
        assert model(x).shape == (2, 5)


def test_apply_under_meta_device_context():
    with torch.device("meta"):
        model = av.apply(tiny_model("vit"), "lora", targets="qkv")
        aurora = av.apply(tiny_model("vit"), "aurora")
    for m in (model, aurora):
        assert {t.device.type for t in [*m.parameters(), *m.buffers()]} == {"meta"}


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_adapters_take_the_model_dtype(dtype):
    model = tiny_model("vit", dtype=dtype, aurora=True)
    assert {p.dtype for p in model.parameters()} == {dtype}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", METHODS)
def test_meta_init_to_empty_load_and_reinit_buffers(family, method):
    """timm's deferred init: build on meta, to_empty, load the weights, reinit the non-persistent buffers."""
    model = adapted(family, method).eval()
    empty = av.apply(tiny_model(family, device="meta"), method).to_empty(device="cpu").eval()
    with torch.no_grad():  # poison what to_empty left, so that a buffer nobody recomputes cannot pass by chance
        for buffer in empty.buffers():
            buffer.fill_(float("nan") if buffer.is_floating_point() else 12345)
    empty.load_state_dict(model.state_dict())
    reinitialized = reinit_non_persistent_buffers(empty)
    assert any(name.endswith("attn.qkv") for name in reinitialized)
    buffers = dict(model.named_buffers())
    for name, buffer in empty.named_buffers():
        assert torch.equal(buffer, buffers[name]), name
    x = tiny_input(family)
    with torch.no_grad():
        torch.testing.assert_close(empty(x), model(x))


# torch.fx

def test_adapter_layers_are_fx_leaves():
    leaves = timm.models.get_notrace_modules()
    assert {AdapterLinear, LoraLinear, AuroraLinear} <= set(leaves)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", METHODS)
def test_fx_feature_extractor(family, method):
    model = adapted(family, method).eval()
    _, nodes = timm.models.get_graph_node_names(model)
    qkv = [n for n in nodes if n.endswith("attn.qkv")]
    assert qkv, "adapter layers should appear as whole (leaf) nodes"
    extractor = timm.models.create_feature_extractor(model, return_nodes={qkv[0]: "qkv", nodes[-1]: "out"})
    captured = []
    model.get_submodule(qkv[0]).register_forward_hook(lambda m, args, out: captured.append(out))
    x = tiny_input(family)
    with torch.no_grad():
        got = extractor(x)
        expected = model(x)
    torch.testing.assert_close(got["out"], expected)
    torch.testing.assert_close(got["qkv"], captured[0])


# TorchScript

# SwinV2 too: scripting compiles its unused F.linear(x, qkv.weight, bias) branch, which reads the adapter's weight
@pytest.mark.parametrize("family", FAMILIES + ["swinv2"])
@pytest.mark.parametrize("method", METHODS)
def test_torchscript_equals_eager_and_round_trips(family, method):
    model = adapted(family, method).eval()
    scripted = torch.jit.script(model)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    reloaded = torch.jit.load(buffer)
    x = tiny_input(family)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(scripted(x), expected)
        torch.testing.assert_close(reloaded(x), expected)


# ONNX

# the dynamo exporter goes through torch.export (slower); one family shows it holds
@pytest.mark.parametrize("family,dynamo", [("vit", False), ("swin", False), ("vit", True)],
                         ids=["vit-legacy", "swin-legacy", "vit-dynamo"])
def test_onnx_export_matches_eager(family, dynamo, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[dev]')")
    if dynamo:
        pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript (pip install -e '.[dev]')")
    else:
        pytest.importorskip("onnx", reason="the legacy exporter needs onnx (pip install -e '.[dev]')")
    model = adapted(family).eval()
    x = tiny_input(family)
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["x"], dynamo=dynamo, opset_version=18 if dynamo else 17)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), model(x), rtol=1e-4, atol=1e-5)


# reentrant gradient checkpointing

@pytest.fixture
def reentrant():
    before = timm.layers.use_reentrant_ckpt()
    timm.layers.set_reentrant_ckpt(True)
    yield
    timm.layers.set_reentrant_ckpt(before)


def adapter_grads(model, x):
    model.zero_grad()
    model(x).square().mean().backward()
    return {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", METHODS)
def test_reentrant_checkpointing_trains_adapters(family, method, reentrant):
    model = adapted(family, method, drop_path_rate=0.0).train()  # no random drops: the same gradients twice
    x = tiny_input(family)
    expected = adapter_grads(model, x)
    model.set_grad_checkpointing()
    got = adapter_grads(model, x)
    adapters = av.inject.adapter_parameter_names(model)
    assert adapters and all(got[n] is not None for n in adapters)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name])


@pytest.mark.parametrize("method", ["bitfit", "peft-lora"])
def test_reentrant_checkpointing_trains_methods_without_our_layers(method, reentrant):
    """Any method whose parameters sit in blocks behind the frozen embedding gets its gradients."""
    if method == "peft-lora":
        pytest.importorskip("peft")
    model = av.apply(tiny_model("vit", drop_path_rate=0.0), method, targets="qkv") if method == "peft-lora" \
        else av.apply(tiny_model("vit", drop_path_rate=0.0), method)
    x = tiny_input("vit")
    expected = adapter_grads(model.train(), x)
    model.set_grad_checkpointing()
    got = adapter_grads(model, x)
    blocks = [n for n in expected if n.startswith("blocks.")]
    assert blocks and all(got[n] is not None for n in blocks)
    for name in blocks:
        torch.testing.assert_close(got[name], expected[name])


def test_embedding_output_needs_grad_only_under_reentrant_checkpointing(reentrant):
    """Marking it costs the first block an input gradient, so outside reentrant checkpointing it is left alone."""
    model = adapted("vit").train()
    outputs = []
    model.patch_embed.register_forward_hook(lambda m, args, out: outputs.append(out.requires_grad))
    model(tiny_input("vit"))
    timm.layers.set_reentrant_ckpt(False)
    model(tiny_input("vit"))
    with torch.no_grad():
        timm.layers.set_reentrant_ckpt(True)
        model(tiny_input("vit"))
    assert outputs == [True, False, False]


# checkpoint_path

@pytest.mark.parametrize("family", FAMILIES)
def test_checkpoint_path_round_trip(family, tmp_path):
    model = randomize(tiny_model(family, aurora=True)).eval()
    torch.save(model.state_dict(), tmp_path / "adapted.pth")
    loaded = tiny_model(family, aurora=True, checkpoint_path=str(tmp_path / "adapted.pth")).eval()
    x = tiny_input(family)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_checkpoint_path_of_a_base_model_says_how_to_load_it(tmp_path):
    torch.save(tiny_model("vit").state_dict(), tmp_path / "base.pth")
    with pytest.raises(ValueError, match="pretrained_cfg_overlay=dict"):
        tiny_model("vit", aurora=True, checkpoint_path=str(tmp_path / "base.pth"))


# merge_and_unload

@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", METHODS)
def test_merge_and_unload_gives_a_plain_trainable_model(family, method):
    model = adapted(family, method)
    plain = tiny_model(family)
    av.merge_and_unload(model, approximate=True)
    assert not hasattr(model, STATE_ATTR)
    assert all(p.requires_grad for p in model.parameters())
    assert not list(av.adapter_layers(model))
    assert list(model.state_dict()) == list(plain.state_dict())
    assert not any(m._forward_hooks for m in model.modules())
    av.apply(model, "lora")  # a plain model again: another method applies
