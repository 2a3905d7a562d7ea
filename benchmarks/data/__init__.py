from .cache import load_split
from .device import DeviceSplit, DeviceTransform
from .sources import SOURCES, DataError, RawSplit, list_split
from .tasks import FGVC, PAPER, SUITES, VTAB1K, VTAB_GROUPS, TaskInfo, lookup
