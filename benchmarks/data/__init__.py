"""Data: sources (one file each, registered by name), the decode cache, and splits held on the device."""
from . import digits, fgvc, folder, hf, torchvision_datasets, vtab  # noqa: F401  (each registers its source)
from .cache import load_split
from .raw import DataError, RawSplit
from .registry import COMMON, SOURCES, check_split, get_source, list_split, options_of, register_source
from .tasks import FGVC, PAPER, SUITES, VTAB1K, VTAB_GROUPS, TaskInfo, lookup


def __getattr__(name):
    # the device side needs torch: loaded on first use, so that configs are checked without it
    if name in ("DeviceSplit", "DeviceTransform"):
        from . import device
        return getattr(device, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
