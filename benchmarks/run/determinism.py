"""The process-wide switches behind `train.deterministic`, set at the start of every run.

Deterministic mode (bit-identical accuracy and loss curve on a rerun on the same GPU type and software):
- torch.use_deterministic_algorithms(True): ops with a deterministic variant use it (SDPA's backward,
  index_copy, cumsum, ...), ops without one raise instead of quietly varying. In this torch it also turns
  on inductor's deterministic mode (no autotuning that changes numerics), so train.compile stays on.
- cuDNN: deterministic algorithms and no benchmarking (timed algorithm choice can differ per process).
- CUBLAS_WORKSPACE_CONFIG=:4096:8, which cuBLAS needs for reproducible GEMMs and torch checks for.
The default mode sets the same switches to torch's defaults, so a run never inherits another run's mode
in a worker process; cudnn.benchmark stays off in both (free: a ViT's one convolution is the patch embed).

Left as they are, because they are deterministic already:
- CUDA graphs (run/cuda_graph.py): a replay issues the recorded kernels in the recorded order on the
  same memory, and the capture's warm-up is undone (weights, optimizer state, CUDA RNG) before the first
  replay, so the graphed run draws the same numbers as the eager one.
- AuroRA's Triton kernels (aurora_vision/kernels): no atomics; the sigma backward writes per-program
  partial sums that torch adds up in a fixed order, and the fold is forward only.
- AdapterLinear.up_weight: index_copy with distinct rows; its backward is index_select (a gather).
- The random draws: model init, dropout and drop-path use the global RNGs (seed_everything seeds CPU and
  every CUDA device), batch order and augmentation their own generators seeded from the run seed.
"""
import os

import torch

from ..errors import UserError

CUBLAS_ENV, CUBLAS_DETERMINISTIC = "CUBLAS_WORKSPACE_CONFIG", (":4096:8", ":16:8")


def configure(deterministic: bool, compile_model: bool = False) -> dict:
    """Set the switches for a run in this mode; returns what was set, for the run's record."""
    forced = {"torch.use_deterministic_algorithms": deterministic, "cudnn.deterministic": deterministic,
              "cudnn.benchmark": False}
    if deterministic:
        forced[CUBLAS_ENV] = _cublas_workspace()
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False
    if compile_model:
        forced["inductor.deterministic"] = _inductor(deterministic)
    return forced


def _cublas_workspace() -> str:
    """Put a deterministic cuBLAS workspace config in this process's environment. cuBLAS (through torch)
    reads it once, when the process first uses cuBLAS: it must be set before CUDA work starts, which it
    is in a fresh process (a spawned sweep worker, rerun_spread's runs). The record says when it was not."""
    if os.environ.get(CUBLAS_ENV) not in CUBLAS_DETERMINISTIC:
        os.environ[CUBLAS_ENV] = CUBLAS_DETERMINISTIC[0]
    value = os.environ[CUBLAS_ENV]
    if torch.cuda.is_initialized():
        return f"{value} (CUDA was already initialised in this process: the workspace set earlier stands)"
    return value


def _inductor(deterministic: bool) -> bool:
    """inductor's deterministic mode to match (use_deterministic_algorithms sets it in recent torch; older
    torch has no such mode, and a compiled deterministic run there would not be one: refuse it)."""
    import torch._inductor.config as inductor
    if not hasattr(inductor, "deterministic"):
        if deterministic:
            raise UserError(f"train.deterministic with train.compile needs inductor's deterministic mode, which "
                             f"torch {torch.__version__} lacks; set train.compile=false or upgrade torch")
        return False
    inductor.deterministic = deterministic
    return deterministic
