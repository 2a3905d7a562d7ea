"""Runners for the parallel-sweep tests; imported by name inside spawned worker processes."""
import os
from pathlib import Path


def ok_runner(run, logdir=None, quiet=False):
    return {"status": "ok", "config": run, "accuracy": float(run["seed"]), "pid": os.getpid()}


def crash_once_runner(run, logdir=None, quiet=False):
    """Kills its worker process the first time it sees method 'b' (a marker file remembers)."""
    marker = Path(logdir).parents[3] / f"crashed-{run['method']['variant']}"
    if run["method"]["variant"] in ("b", "always") and (run["method"]["variant"] == "always" or not marker.exists()):
        marker.touch()
        os._exit(9)
    return ok_runner(run)


def env_runner(run, logdir=None, quiet=False):
    """Reports the device pinning its worker was given."""
    keys = ("CUDA_VISIBLE_DEVICES", "AURORA_VISION_DEVICE_SHARED_BY")
    return {**ok_runner(run), "env": {k: os.environ.get(k) for k in keys}}
