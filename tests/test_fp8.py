"""train.precision fp8 (benchmarks/run/fp8.py): torchao's FP8 linears for the frozen backbone, on CPU through
torchao's emulation (AURORA_VISION_FP8_EMULATE=1); the CUDA kernels themselves are measured by perf/speed.py."""
import copy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import aurora_vision as av
from aurora_bench.config import load_config, resolve_run
from aurora_bench.errors import UserError
from aurora_bench.run import fp8, train_run
from aurora_bench.run.cuda_graph import adamw, train_step
from aurora_bench.run.model import param_groups

from fixtures import tiny_cfg, tiny_input, tiny_model

try:
    import torchao.float8  # noqa: F401
    TORCHAO = True
except Exception:  # not installed, or built for another torch
    TORCHAO = False
needs_torchao = pytest.mark.skipif(not TORCHAO, reason="torchao is not importable (pip install aurora-vision[fp8])")


@pytest.fixture
def emulate(monkeypatch):
    monkeypatch.setenv(fp8.EMULATE_ENV, "1")


def is_fp8(module) -> bool:
    return type(module).__name__ == "Float8Linear"  # torchao's class is not public API


def adapted(method: str, **arch):
    """The tiny ViT (2 blocks, width 32) with q/v adapters whose B is non-zero, so the branch counts."""
    model = av.apply(tiny_model("vit", **arch), method, targets="qv")
    torch.manual_seed(1)
    with torch.no_grad():
        for _, layer in av.adapter_layers(model):
            layer.B.normal_(0, 0.1)
    return model


@needs_torchao
@pytest.mark.parametrize("method", ["lora", "aurora"])
def test_only_the_frozen_base_linears_become_fp8(emulate, method):
    model = adapted(method)
    trainable_before = {n: p.clone() for n, p in model.named_parameters() if p.requires_grad}
    info = fp8.convert_frozen_linears(model, torch.device("cpu"))
    # 2 blocks x (qkv, proj, fc1, fc2); the head (trainable) and the adapters' A and B stay as they were
    assert info["linears_converted"] == 8 and info["frozen_linears_skipped"] == 0 and info["emulate"]
    assert info["torchao"] and info["weight_cast"].startswith("every step")
    assert sum(is_fp8(m) for m in model.modules()) == 8
    assert all(is_fp8(layer.base_layer) for _, layer in av.adapter_layers(model))
    assert not is_fp8(model.head) and type(model.head) is nn.Linear
    after = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert after.keys() == trainable_before.keys()  # the same trainable parameters, by name
    assert all(torch.equal(after[n], p) for n, p in trainable_before.items())


@needs_torchao
def test_linears_whose_dimensions_are_not_multiples_of_16_stay_and_are_counted(emulate):
    model = adapted("lora", mlp_ratio=1.25)  # fc1 32 -> 40, fc2 40 -> 32: no FP8 GEMM takes them
    info = fp8.convert_frozen_linears(model, torch.device("cpu"))
    assert info["linears_converted"] == 4 and info["frozen_linears_skipped"] == 4
    assert not any(is_fp8(m) for name, m in model.named_modules() if name.endswith(("fc1", "fc2")))


@needs_torchao
@pytest.mark.parametrize("method", ["lora", "aurora"])
def test_a_step_trains_the_adapters_and_leaves_the_frozen_weights(emulate, method):
    model = adapted(method)
    fp8.convert_frozen_linears(model, torch.device("cpu"))
    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    adapters = set(av.inject.adapter_parameter_names(model))
    before = {n: p.clone() for n, p in model.named_parameters() if n in adapters}
    optimizer = adamw(param_groups(model, 1e-2, 1e-2, 1e-4), torch.device("cpu"), graphs=False)
    x, y = tiny_input("vit", batch=4), torch.tensor([0, 1, 2, 3])
    loss = train_step(optimizer, lambda x, y: F.cross_entropy(model(x), y), x, y)
    assert torch.isfinite(loss)
    grads = {n: p.grad for n, p in model.named_parameters() if n in adapters}
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values()), "every adapter gets a gradient"
    assert all(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in adapters)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if not p.requires_grad)
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


def rel(a, b) -> float:
    return ((a - b).norm() / b.norm()).item()


def outputs_and_adapter_gradients(net, x, bf16: bool, device_type: str = "cpu"):
    net.zero_grad()
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        out = net(x).float()
    out.square().mean().backward()
    adapters = set(av.inject.adapter_parameter_names(net))
    return out.detach(), torch.cat([p.grad.flatten() for n, p in net.named_parameters() if n in adapters])


def assert_close_to_references(fp8_run, references):
    # e4m3 keeps 3 mantissa bits: a few per cent per layer, not the tenths a wrong scale or layout gives
    for out, grad in references:
        assert rel(fp8_run[0], out) < 0.1 and rel(fp8_run[1], grad) < 0.25
    assert rel(fp8_run[0], references[0][0]) > 0, "the FP8 path rounds: it did run"


@needs_torchao
@pytest.mark.parametrize("method", ["lora", "aurora"])
def test_outputs_and_adapter_gradients_are_close_to_fp32_and_bf16(emulate, method):
    reference = adapted(method)
    model = copy.deepcopy(reference)
    fp8.convert_frozen_linears(model, torch.device("cpu"))
    x = tiny_input("vit", batch=4)
    references = [outputs_and_adapter_gradients(reference, x, bf16) for bf16 in (False, True)]
    # emulated on CPU the rest runs in fp32 (torchao's Float8Linear follows CUDA's autocast only)
    assert_close_to_references(outputs_and_adapter_gradients(model, x, bf16=False), references)


@needs_torchao
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9),
                    reason="FP8 tensor cores: CUDA compute capability >= 8.9")
@pytest.mark.parametrize("method", ["lora", "aurora"])
def test_fp8_tensor_cores_under_bf16_autocast_are_close_to_bf16(monkeypatch, method):
    monkeypatch.delenv(fp8.EMULATE_ENV, raising=False)
    device = torch.device("cuda")
    reference = adapted(method).to(device)
    model = copy.deepcopy(reference)
    info = fp8.convert_frozen_linears(model, device)
    assert not info["emulate"] and info["linears_converted"] == 8
    x = tiny_input("vit", batch=8).to(device)
    references = [outputs_and_adapter_gradients(reference, x, bf16, "cuda") for bf16 in (False, True)]
    assert_close_to_references(outputs_and_adapter_gradients(model, x, True, "cuda"), references)
    compiled = torch.compile(model)  # as the runner trains it
    assert_close_to_references(outputs_and_adapter_gradients(compiled, x, True, "cuda"), references)


def test_fp8_without_torchao_is_a_one_line_user_error(monkeypatch, emulate):
    monkeypatch.setitem(sys.modules, "torchao", None)  # importing it now raises ImportError
    monkeypatch.setitem(sys.modules, "torchao.float8", None)
    with pytest.raises(UserError, match=r"needs torchao.*pip install aurora-vision\[fp8\]") as e:
        fp8.check_available(torch.device("cpu"))
    assert "\n" not in str(e.value)


def test_fp8_needs_an_fp8_gpu_unless_emulated(monkeypatch):
    monkeypatch.delenv(fp8.EMULATE_ENV, raising=False)
    with pytest.raises(UserError, match=r"CUDA GPU of compute capability >= 8.9; the run is on cpu"):
        fp8.check_device(torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100")
    with pytest.raises(UserError, match=r"NVIDIA A100 has 8.0: choose train.precision bf16"):
        fp8.check_device(torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    fp8.check_device(torch.device("cuda"))  # Hopper: fine
    monkeypatch.setenv(fp8.EMULATE_ENV, "1")
    fp8.check_device(torch.device("cpu"))  # the test switch


def test_fp8_compiles_on_cuda_only():
    assert fp8.implies_compile({"precision": "fp8"}, "cuda")
    assert not fp8.implies_compile({"precision": "fp8"}, "cpu")
    assert not fp8.implies_compile({"precision": "bf16"}, "cuda")


def test_the_shared_validation_config_takes_fp8_as_an_override():
    root = Path(__file__).resolve().parent.parent
    cfg = load_config(root / "configs" / "shared_validation.yaml", ["train.precision=fp8"])
    assert cfg["train"]["precision"] == "fp8"
    assert resolve_run(cfg, "cifar10", "aurora", 0)["train"]["precision"] == "fp8"


@needs_torchao
def test_a_run_in_fp8_records_how(tmp_path, emulate):
    cfg = tiny_cfg(tmp_path)
    cfg["train"]["precision"] = "fp8"
    result = train_run(resolve_run(cfg, "mytask", "aurora", 0), quiet=True)
    assert result["status"] == "ok" and result["precision"] == "fp8" and not result["compiled"]
    info = result["fp8"]
    # the tiny model's one block: qkv, proj, fc1, fc2 (width 16); the head stays
    assert info["linears_converted"] == 4 and info["emulate"] and info["torchao"]
    assert 0 <= result["accuracy"] <= 100 and result["accuracy_static_merge"] is not None


def test_a_run_in_fp8_on_cpu_without_emulation_fails_saying_why(tmp_path, monkeypatch):
    monkeypatch.delenv(fp8.EMULATE_ENV, raising=False)
    cfg = tiny_cfg(tmp_path)
    cfg["train"]["precision"] = "fp8"
    with pytest.raises(UserError, match="train.precision fp8 needs"):
        train_run(resolve_run(cfg, "mytask", "aurora", 0), quiet=True)
