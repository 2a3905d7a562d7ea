"""Durable file writes for the result store. A written file is either the old one or the whole new one (a
temporary file renamed over it), and once a write returns it survives a power loss (the file and its folder
are fsynced). A failed write leaves no temporary file behind; writes that keep failing are retried, and the
store then falls back to a file outside the results folder (`fallback_dir`)."""
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable

# a full disk or a flaky network filesystem may recover within seconds; a write is tried 1 + len() times
RETRY_DELAYS_S = (0.5, 2.0, 5.0)
FALLBACK_ENV = "AURORA_VISION_UNSAVED_DIR"
_TMP_SUFFIX = ".tmp"


def _tmp_path(path: Path) -> Path:
    # host and pid in the name: `remove_stale_tmp` can tell a dead writer's leftover from a live one's
    return path.with_name(f".{path.name}.{socket.gethostname()}-{os.getpid()}{_TMP_SUFFIX}")


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new entry in `folder` durable (POSIX; directories cannot be opened on Windows)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(folder: Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        fsync_dir(folder.parent)
    return folder


def write_atomic(path, data: bytes) -> Path:
    """`data` into `path` all at once and durably; raises OSError with no temporary file left behind."""
    return write_atomic_with(path, lambda f: f.write(data))


def write_atomic_with(path, fill: Callable[[BinaryIO], object]) -> Path:
    """What `fill(file)` writes (a stream too large to hold twice in memory), into `path` as `write_atomic`."""
    path = Path(path)
    ensure_dir(path.parent)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: half a file must not outlive the write
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def write_with_retries(path, data: bytes, delays=None) -> Path:
    """`write_atomic`, tried again after each of `delays` seconds (default RETRY_DELAYS_S); raises the last
    OSError."""
    delays = RETRY_DELAYS_S if delays is None else delays
    for delay in delays:
        try:
            return write_atomic(path, data)
        except OSError:
            time.sleep(delay)
    return write_atomic(path, data)


def fallback_dir() -> Path:
    """Where a record goes when its results folder cannot be written: $AURORA_VISION_UNSAVED_DIR, else a folder
    in the system's temporary directory (often another filesystem than the results)."""
    return Path(os.environ.get(FALLBACK_ENV) or Path(tempfile.gettempdir()) / "aurora-vision-unsaved")


def write_fallback(name: str, data: bytes) -> Path:
    """`data` as a new file named after `name` in `fallback_dir()`, never overwriting; raises OSError."""
    folder = ensure_dir(fallback_dir())
    stem, n = f"{name}.{time.strftime('%Y%m%d-%H%M%S')}", 0
    while (folder / f"{stem}{f'.{n}' if n else ''}.json").exists():
        n += 1
    return write_atomic(folder / f"{stem}{f'.{n}' if n else ''}.json", data)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_tmp(folder) -> list[Path]:
    """Delete temporary files that writers on this host left when they were killed mid-write; returns them."""
    removed, host = [], socket.gethostname()
    for tmp in Path(folder).glob(f".*{_TMP_SUFFIX}"):
        pid = re.search(r"-(\d+)\.tmp$", tmp.name)
        if pid and tmp.name.endswith(f".{host}-{pid[1]}{_TMP_SUFFIX}") and not _pid_alive(int(pid[1])):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
