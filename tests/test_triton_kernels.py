import os
import subprocess
import sys
from pathlib import Path

import pytest

from aurora_vision.layers import nonlinearity


def run_under_interpreter(script: str) -> str:
    """Triton reads TRITON_INTERPRET when it is imported, hence a fresh process."""
    pytest.importorskip("triton")
    here = Path(__file__).parent
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": f"{here.parent}"}
    proc = subprocess.run([sys.executable, str(here / script)], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_triton_sigma_equals_reference_under_the_interpreter():
    assert "ok 6 cases" in run_under_interpreter("triton_sigma_cases.py")


def test_triton_eval_fold_equals_torch_fold_under_the_interpreter():
    assert "ok 5 cases" in run_under_interpreter("triton_fold_cases.py")


def test_cuda_implementation_is_chosen_by_name(monkeypatch):
    for name, expect in (("compile", "fused_sigma_cubic"), ("eager", "sigma_cubic"), ("triton", "triton_sigma_cubic")):
        monkeypatch.setattr(nonlinearity, "SIGMA_ON_CUDA", name)
        assert nonlinearity.cuda_sigma_cubic().__name__ == expect
    monkeypatch.setattr(nonlinearity, "SIGMA_ON_CUDA", "fast")
    with pytest.raises(ValueError, match="AURORA_VISION_SIGMA='fast'; choose one of triton, compile, eager"):
        nonlinearity.cuda_sigma_cubic()
