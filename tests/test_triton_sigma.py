import os
import subprocess
import sys
from pathlib import Path

import pytest

from aurora_vision.layers import nonlinearity


def test_triton_sigma_equals_reference_under_the_interpreter():
    pytest.importorskip("triton")
    here = Path(__file__).parent
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": f"{here.parent}"}
    proc = subprocess.run([sys.executable, str(here / "triton_sigma_cases.py")], env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok 6 cases" in proc.stdout


def test_cuda_implementation_is_chosen_by_name(monkeypatch):
    for name, expect in (("compile", "fused_sigma_cubic"), ("eager", "sigma_cubic"), ("triton", "triton_sigma_cubic")):
        monkeypatch.setattr(nonlinearity, "SIGMA_ON_CUDA", name)
        assert nonlinearity.cuda_sigma_cubic().__name__ == expect
    monkeypatch.setattr(nonlinearity, "SIGMA_ON_CUDA", "fast")
    with pytest.raises(ValueError, match="AURORA_VISION_SIGMA='fast'; choose one of triton, compile, eager"):
        nonlinearity.cuda_sigma_cubic()
