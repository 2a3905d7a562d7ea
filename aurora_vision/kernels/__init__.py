"""Fast CUDA paths for the adapter layers, each equal to its layer's torch formula (the tests compare them).

One environment variable per path picks its implementation once per process; runs record the choice:

    AURORA_VISION_SIGMA   AuroRA's nonlinearity: triton (default), compile (torch.compile fuses the
                          formula; tens of seconds of compiling per process) or eager
    AURORA_VISION_FOLD    the eval fold's GEMM operands: triton (default) or torch

Triton is imported only when a Triton path runs (`pip install "aurora-vision[cuda]"`).
"""
import functools
import os

CHOICES = {"AURORA_VISION_SIGMA": ("triton", "compile", "eager"), "AURORA_VISION_FOLD": ("triton", "torch")}


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
