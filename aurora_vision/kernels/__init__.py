"""Fast CUDA paths for the adapter layers, each equal to its layer's torch formula (the tests compare them).

One environment variable per path picks its implementation once per process; runs record the choice:

    AURORA_VISION_SIGMA   AuroRA's nonlinearity: triton (default), compile (torch.compile fuses the
                          formula; tens of seconds of compiling per process) or eager
    AURORA_VISION_FOLD    the eval fold's GEMM operands: triton (default) or torch
    AURORA_VISION_BRANCH  a narrow adapter branch's rank-r products when torch.compile trains it: gemm (default,
                          cuBLAS) or fused (r-term sums that inductor can fuse into the kernels around them; the
                          default once benchmarks/perf/issue23.sh measures it faster on a GPU)

Triton is imported only when a Triton path runs (`pip install "aurora-vision[cuda]"`).
"""
import functools
import os

CHOICES = {"AURORA_VISION_SIGMA": ("triton", "compile", "eager"), "AURORA_VISION_FOLD": ("triton", "torch"),
           "AURORA_VISION_BRANCH": ("gemm", "fused")}


def check(env: str, name: str) -> None:
    if name not in CHOICES[env]:
        raise ValueError(f"{env}={name!r}; choose one of {', '.join(CHOICES[env])}")


@functools.cache
def triton_kernels(module: str, env: str):
    """`aurora_vision.kernels.<module>`, importing triton on first use, with the way out if it is missing.
    Import statements, not importlib: dynamo runs an import statement while it traces a compiled block, but
    breaks the graph at importlib.import_module (on the GPU, at every adapted layer of a compiled block)."""
    try:
        from . import triton_fold, triton_sigma
    except ImportError as e:
        others = " or ".join(c for c in CHOICES[env] if c != "triton")
        raise ImportError(f"{env}=triton needs the triton package ({e}): pip install 'aurora-vision[cuda]', "
                          f"or set {env}={others}") from e
    return {"triton_fold": triton_fold, "triton_sigma": triton_sigma}[module]


SIGMA_ON_CUDA = os.environ.get("AURORA_VISION_SIGMA", "triton")
FOLD_ON_CUDA = os.environ.get("AURORA_VISION_FOLD", "triton")
BRANCH_COMPILED = os.environ.get("AURORA_VISION_BRANCH", "gemm")
