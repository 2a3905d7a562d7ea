import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from aurora_vision import kernels
from aurora_vision.layers import LoraLinear, nonlinearity


def run_under_interpreter(script: str) -> str:
    """Triton reads TRITON_INTERPRET when it is imported, hence a fresh process."""
    pytest.importorskip("triton")
    here = Path(__file__).parent
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": f"{here.parent}"}
    proc = subprocess.run([sys.executable, str(here / script)], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow  # a fresh interpreter under Triton's CPU interpreter
def test_triton_sigma_equals_reference_under_the_interpreter():
    assert "ok 6 cases" in run_under_interpreter("triton_sigma_cases.py")


@pytest.mark.slow  # a fresh interpreter under Triton's CPU interpreter
def test_triton_eval_fold_equals_torch_fold_under_the_interpreter():
    assert "ok 5 cases" in run_under_interpreter("triton_fold_cases.py")


def test_sigma_op_on_the_cpu_equals_the_formula_and_passes_opcheck():
    """The op outside the interpreter: its torch form, whose backward is written out (sigma_cubic_backward),
    against autograd through the formula, every case; its registration by torch.library.opcheck (its AOT
    dispatch, seconds of tracing, is test_compiling.py's compiled block)."""
    pytest.importorskip("triton")
    from triton_sigma_cases import check
    assert check("cpu", opcheck=("test_schema", "test_autograd_registration", "test_faketensor")) == 6


def test_sigma_ops_name_their_kernels_for_the_compile_cache():
    """AOTAutograd's cache key holds the source of the Triton kernels torch finds in each triton_op's body (by
    its `wrap_triton(kernel)` calls): a kernel hidden from that search would leave stale compiled code."""
    pytest.importorskip("triton")
    from torch._library.triton import get_triton_kernels_for_op

    from aurora_vision.kernels import triton_sigma
    assert get_triton_kernels_for_op("aurora_vision::sigma_cubic") == [triton_sigma._sigma_fwd]
    assert get_triton_kernels_for_op("aurora_vision::sigma_cubic_backward") == [triton_sigma._sigma_bwd]


def test_cuda_implementation_is_chosen_by_name(monkeypatch):
    for name, expect in (("compile", "fused_sigma_cubic"), ("eager", "sigma_cubic"), ("triton", "triton_sigma_cubic")):
        monkeypatch.setattr(kernels, "SIGMA_ON_CUDA", name)
        assert nonlinearity.cuda_sigma_cubic().__name__ == expect
    monkeypatch.setattr(kernels, "SIGMA_ON_CUDA", "fast")
    with pytest.raises(ValueError, match="AURORA_VISION_SIGMA='fast'; choose one of triton, compile, eager"):
        nonlinearity.cuda_sigma_cubic()


def test_triton_fold_only_where_it_applies(monkeypatch):
    """CUDA, a half-precision GEMM, no dropout to draw; AURORA_VISION_FOLD names the choice."""
    pytest.importorskip("triton")
    from types import SimpleNamespace

    from aurora_vision.kernels import triton_fold
    layer = LoraLinear(nn.Linear(8, 12), r=2, dropout=0.1).eval()
    on_cuda, on_cpu = SimpleNamespace(is_cuda=True), SimpleNamespace(is_cuda=False)
    assert layer._fold_kernels(on_cuda, torch.bfloat16) is triton_fold
    assert layer._fold_kernels(on_cuda, torch.float32) is None
    assert layer._fold_kernels(on_cpu, torch.bfloat16) is None
    assert layer.train()._fold_kernels(on_cuda, torch.bfloat16) is None  # the torch form draws the dropout
    layer.eval()
    monkeypatch.setattr(kernels, "FOLD_ON_CUDA", "torch")
    assert layer._fold_kernels(on_cuda, torch.bfloat16) is None
    monkeypatch.setattr(kernels, "FOLD_ON_CUDA", "fast")
    with pytest.raises(ValueError, match="AURORA_VISION_FOLD='fast'; choose one of triton, torch"):
        layer._fold_kernels(on_cuda, torch.bfloat16)
