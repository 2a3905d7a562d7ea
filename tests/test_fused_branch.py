"""The adapter branch inside torch.compile: its rank-r products as sums (AURORA_VISION_BRANCH=fused, for inductor
to fuse) compute what the eager GEMM form computes, forward and backward, and the switch chooses between them."""
import re

import pytest
import torch
from torch import nn

import aurora_vision as av
from aurora_vision import kernels
from aurora_vision.layers import AuroraLinear, LoraLinear
from aurora_vision.layers.adapter import FUSED_MAX_WIDTH
from fixtures import tiny_input, tiny_model

# a whole output, and two slices out of order with rows around and between them (k of a fused qkv, say)
SLICES = [None, [(6, 9), (0, 3)]]


@pytest.fixture(autouse=True)
def fused_by_default(monkeypatch):
    """The form under test (opt-in for now), whatever AURORA_VISION_BRANCH the shell running the tests exports."""
    monkeypatch.setattr(kernels, "BRANCH_COMPILED", "fused")


def _layer(kind, slices, r=2):
    torch.manual_seed(0)
    layer = kind(nn.Linear(12, 10), r=r, alpha=4, slices=slices)
    nn.init.normal_(layer.B, std=0.5)  # B = 0 at init would hide the up-projection
    return layer


def _grads(fn, layer, x):
    out = fn(x)
    params = [x] + [p for p in layer.parameters() if p.requires_grad]
    return [out] + list(torch.autograd.grad(out.square().sum(), params))


def _graph_ops(fn, x):
    explained = torch._dynamo.explain(fn)(x)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    return [str(n.target) for n in explained.graphs[0].graph.nodes if n.op == "call_function"]


@pytest.mark.parametrize("kind", [AuroraLinear, LoraLinear])
@pytest.mark.parametrize("slices", SLICES)
def test_the_fused_branch_computes_the_gemm_form(kind, slices):
    layer = _layer(kind, slices)
    x = torch.randn(3, 5, 12, requires_grad=True)
    want = _grads(layer, layer, x)
    assert not any("addmm" in op for op in _graph_ops(layer, x))  # the sums ran, not the GEMM form
    torch._dynamo.reset()
    got = _grads(torch.compile(layer, fullgraph=True, backend="aot_eager"), layer, x)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)  # sums add in another order than GEMMs


def test_the_fused_branch_takes_no_matmul_and_gemm_takes_its_two(monkeypatch):
    layer = _layer(AuroraLinear, SLICES[1])
    x = torch.randn(4, 12)
    fused = _graph_ops(layer, x)
    assert [op for op in fused if "linear" in op or "addmm" in op] == ["<built-in function linear>"]  # the base's
    monkeypatch.setattr(kernels, "BRANCH_COMPILED", "gemm")
    gemm = _graph_ops(layer, x)
    assert sum("linear" in op for op in gemm) == 2 and sum("addmm" in op for op in gemm) == 1


def test_a_branch_wider_than_the_limit_stays_gemms():
    layer = _layer(LoraLinear, SLICES[1], r=FUSED_MAX_WIDTH // 2 + 1)
    assert sum("addmm" in op for op in _graph_ops(layer, torch.randn(4, 12))) == 1


def test_compiled_no_grad_and_exported_graphs_keep_the_gemms():
    layer = _layer(AuroraLinear, SLICES[1])
    with torch.no_grad():  # evaluation: the fold's or the GEMM form, as eager
        assert not any("stack" in op for op in _graph_ops(layer, torch.randn(4, 12)))
    exported = torch.export.export(layer, (torch.randn(4, 12),))
    ops = [str(n.target) for n in exported.graph.nodes if n.op == "call_function"]
    assert sum("addmm" in op for op in ops) == 1 and not any("stack" in op for op in ops), ops


def test_eager_runs_gemms_whatever_the_switch_says(monkeypatch):
    layer = _layer(LoraLinear, None)
    called = []
    monkeypatch.setattr(type(layer), "_fused_branch", lambda self, *a: called.append(1))
    layer(torch.randn(4, 12))
    assert not called


def test_an_unknown_branch_choice_names_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setattr(kernels, "BRANCH_COMPILED", "cublas")
    with pytest.raises(ValueError, match="AURORA_VISION_BRANCH='cublas'; choose one of gemm, fused"):
        _layer(LoraLinear, None)  # when the model is adapted, not silently at the first compiled forward


def test_a_block_compiled_by_inductor_with_fused_branches_matches_eager_and_calls_only_the_base_gemms():
    """inductor's own lowering of the sums (the backend the runner uses), on a tiny ViT block with AuroRA on
    q/v and LoRA on every linear: the outputs and gradients of eager, and in the generated code no GEMM but the
    frozen linears' four forward (with bias) and four input-gradient ones: the branch runs inside other kernels."""
    from torch._inductor.utils import run_and_get_code
    for method, cfg in (("aurora", {"r": 2, "alpha": 4, "targets": "qv"}), ("lora", {"r": 2, "targets": "all"})):
        model = av.apply(tiny_model("vit"), method, cfg)
        for name, p in model.named_parameters():
            if name.endswith(".B"):
                nn.init.normal_(p, std=0.5)
        block = model.blocks[1]
        x = torch.randn(2, 17, 32, requires_grad=True)
        want = _grads(block, block, x)
        torch._dynamo.reset()
        got, code = run_and_get_code(_grads, torch.compile(block, fullgraph=True), block, x)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)
        gemms = re.findall(r"extern_kernels\.(\w*mm)\(", "\n".join(code))
        assert sorted(gemms) == ["addmm"] * 4 + ["mm"] * 4, (method, gemms)
