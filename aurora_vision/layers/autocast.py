"""Autocast queries that also hold on device types without autocast (meta), where torch's own raise."""
import contextlib
from typing import Optional

import torch

# Whether a device type has autocast, read once for the common ones: torch 2.11's dynamo cannot trace the C
# query, and inside a regionally compiled block each call was a graph break whose resume code recompiled for
# every block until dynamo's limit (benchmarks/RESULTS.md, the speed levers).
_AUTOCAST_AVAILABLE = {t: torch.amp.is_autocast_available(t) for t in ("cpu", "cuda")}


def _available(device_type: str) -> bool:
    known = _AUTOCAST_AVAILABLE.get(device_type)
    return torch.amp.is_autocast_available(device_type) if known is None else known


def autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The dtype autocast casts to on this device type; None where it is off or the type has no autocast."""
    if _available(device_type) and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def autocast_off(device_type: str):
    """A context that disables autocast on this device type; a no-op one where the type has no autocast."""
    if _available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()
