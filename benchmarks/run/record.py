"""A run's result record: what it measured, its full config, and where and with what code it ran."""
import os
import platform
import resource
import subprocess
import time
from importlib import metadata
from pathlib import Path

import torch

from aurora_vision import kernels

PACKAGES = ["torch", "torchvision", "timm", "aurora-vision", "fvcore", "numpy", "datasets", "peft"]


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    out["cuda"] = torch.version.cuda
    return out


def git_commit() -> dict:
    """The checkout's commit and whether it had local changes; AURORA_VISION_GIT_COMMIT overrides, for
    copies of the tree that travel without .git."""
    if os.environ.get("AURORA_VISION_GIT_COMMIT"):
        return {"commit": os.environ["AURORA_VISION_GIT_COMMIT"], "dirty": None}
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True)
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def blas_library(device: torch.device):
    """The library torch's GEMMs go through on CUDA ('Cublas', or 'Cublaslt' under TORCH_BLAS_PREFER_CUBLASLT=1
    or torch.backends.cuda.preferred_blas_library); None elsewhere."""
    return torch.backends.cuda.preferred_blas_library().name if device.type == "cuda" else None


def failure(run: dict, error: str, tb: str = "", timing: dict | None = None) -> dict:
    """The record of a failed run; `timing` (timing.failed_run_timing) when and where it ran, where known."""
    return {"status": "failed", "config": run, "task": run["task"], "method": run["method"]["variant"],
            "seed": run["seed"], "error": error, "traceback": tb, "versions": versions(), "git": git_commit(),
            **({"timing": timing} if timing else {})}


def success(run: dict, fitted, inputs, cost: dict, device: torch.device, world: int,
            started: float, static_merge_accuracy=None, calibrated_merge_accuracy=None, data_config=None,
            determinism=None, fp8=None, timing=None) -> dict:
    """The record of a finished run: final-epoch accuracy on the evaluation split, cost, and provenance;
    `data_config` is the timm data config the transform followed, `determinism` what
    run/determinism.configure set, `fp8` what run/fp8.convert_frozen_linears did (train.precision fp8),
    `timing` where the time went (run/timing.py)."""
    tr = run["train"]
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {
        "status": "ok", "config": run, "seed": run["seed"], "task": run["task"], "method": run["method"]["variant"],
        "accuracy": fitted.final["accuracy"], "accuracy_static_merge": static_merge_accuracy,
        "accuracy_calibrated_merge": calibrated_merge_accuracy,  # None unless train.calibrated_merge
        "accuracy_of": f"{run['data']['split_eval']} split, final epoch ({tr['epochs']})",
        "num_classes": inputs.num_classes, "num_train": len(inputs.train), "num_eval": len(inputs.eval),
        "data_config": data_config,  # resize, crop and normalisation as the device transform ran them
        "params": cost["params"], "gmacs_per_image": cost["gmacs"], "uncounted_ops": cost["uncounted_ops"],
        "macs_convention": "fvcore: 1 multiply-add = 1; SDPA and the adapters' nonlinearities counted (see flops.py)",
        "curve": fitted.curve, "train_img_per_s": len(inputs.train) * tr["epochs"] / fitted.train_seconds,
        "eval_img_per_s": fitted.final["img_per_s"], "train_seconds": fitted.train_seconds,
        "peak_memory_mb": peak, "peak_memory_kind": "cuda max allocated" if device.type == "cuda" else "process max RSS",
        "precision": "fp8" if fp8 else "bf16 autocast" if fitted.bf16 else "fp32",
        "fp8": fp8,  # torchao's version, linears converted and skipped, emulation; None unless precision fp8
        "compiled": fitted.compile["mode"] != "none", "device": device_name(device), "world_size": world,
        "aurora_sigma": kernels.SIGMA_ON_CUDA if device.type == "cuda" else "eager",  # how AuroRA's nonlinearity ran
        # how adapted layers ran without autograd: the Triton fold serves half-precision GEMMs only
        "eval_fold": kernels.FOLD_ON_CUDA if device.type == "cuda" and fitted.bf16 else "torch",
        "blas": blas_library(device),
        "cuda_graphs": fitted.graphs,
        # train.compile as it ran: its seconds and whether its kernels came from the compile cache (warm) or not
        "compile": fitted.compile,
        "deterministic": tr["deterministic"], "determinism": determinism,
        # runs sharing this device at once (parallel sweep workers): throughput and times are per shared device
        "device_shared_by": int(os.environ.get("AURORA_VISION_DEVICE_SHARED_BY", "1")),
        "wall_seconds": time.perf_counter() - started, "timing": timing,
        "versions": versions(), "git": git_commit(),
    }
