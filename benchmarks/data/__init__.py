"""Data: sources (one file each, registered by name), the decode cache, and splits held on the device."""
from . import digits, fgvc, folder, hf, torchvision_datasets, vtab  # noqa: F401  (each registers its source)
from .cache import load_split
from .device import DeviceSplit, DeviceTransform
from .raw import DataError, RawSplit
from .registry import COMMON, SOURCES, check_split, get_source, list_split, options_of, register_source
from .tasks import FGVC, PAPER, SUITES, VTAB1K, VTAB_GROUPS, TaskInfo, lookup
