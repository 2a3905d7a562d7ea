"""Who may write a results folder, and who is making which run.

- A writer (a sweep, `aurora-bench run`, a tune) registers a fingerprint of the config of each (task, method)
  it will write; one whose fingerprint differs from a live writer's on a pair they share is refused
  (`FolderInUse`). Writers of disjoint pairs (a main sweep and a rank sweep) share a folder.
- The live process making a run holds its claim (`RunClaim`), so two sweeps of one config split the work
  instead of doing it twice.

Both rest on OS file locks (flock, through `filelock`), which the OS releases when a process dies: a killed
sweep leaves nothing that blocks the next one. Everything lives in `<output>/.locks/`."""
import itertools
import json
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import UserError
from .store_files import write_atomic

LOCKS_DIR = ".locks"
FOLDER_LOCK_TIMEOUT_S = 120  # critical sections below last milliseconds; longer means a hung process
_writer_ids = itertools.count()


class FolderInUse(UserError):
    """A live writer is filling the folder with another config for runs this one would write."""


def _locks(output) -> Path:
    folder = Path(output) / LOCKS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def folder_lock(output) -> FileLock:
    """A short critical section over the whole folder (registering a writer, quarantining a file)."""
    path = _locks(output) / "folder.lock"
    return FileLock(path, timeout=FOLDER_LOCK_TIMEOUT_S)


def _held_by_someone(lock_path: Path) -> bool:
    probe = FileLock(lock_path)
    try:
        probe.acquire(blocking=False)
    except Timeout:
        return True
    probe.release()
    return False


class RunClaim:
    """This process's claim on one run (by its key) while it makes and records it. `acquire()` returns False
    when another live process (or another claim in this one) holds it; the OS drops the claim of a process
    that dies."""

    def __init__(self, output, key: str):
        self.key = key
        self._lock = FileLock(_locks(output) / f"run-{key}.lock")

    def acquire(self) -> bool:
        try:
            self._lock.acquire(blocking=False)
        except Timeout:
            return False
        return True

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class Writer:
    """A registered writer of `output` for `plan` ({name: config fingerprint}) while the `with` block runs.
    Entering raises FolderInUse when a live writer has another fingerprint for a name in `plan`."""

    def __init__(self, output, name: str, plan: dict):
        self.output, self.name, self.plan = Path(output), name, plan
        self.id = f"{socket.gethostname()}-{os.getpid()}-{next(_writer_ids)}"
        folder = _locks(output)
        self._record, self._lock = folder / f"writer-{self.id}.json", FileLock(folder / f"writer-{self.id}.lock")

    def __enter__(self) -> "Writer":
        with folder_lock(self.output):
            for other in self.live_writers():
                clash = sorted(k for k, fp in self.plan.items() if other["plan"].get(k, fp) != fp)
                if clash:
                    raise FolderInUse(
                        f"{self.output} is being written by another live writer ({other['name']!r}, pid "
                        f"{other['pid']} on {other['host']}, since {other['started']}) with a different config "
                        f"for {len(clash)} of the (task, method) pairs this one makes (e.g. {clash[0]}); wait for it "
                        "to end, or use another output folder")
            self._lock.acquire(blocking=False)
            try:
                write_atomic(self._record, json.dumps({
                    "name": self.name, "pid": os.getpid(), "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S"), "plan": self.plan}).encode())
            except BaseException:
                self._lock.release()
                raise
        return self

    def __exit__(self, *exc) -> None:
        with folder_lock(self.output):
            self._record.unlink(missing_ok=True)
            self._lock.release()
            Path(self._lock.lock_file).unlink(missing_ok=True)

    def live_writers(self) -> list[dict]:
        """The other registered writers whose process still holds its lock; a dead one's entry is removed.
        Call it under `folder_lock`."""
        live = []
        for record in sorted(_locks(self.output).glob("writer-*.json")):
            if record == self._record:
                continue
            if not _held_by_someone(record.with_suffix(".lock")):
                record.unlink(missing_ok=True)  # its process died without unregistering
                record.with_suffix(".lock").unlink(missing_ok=True)
                continue
            try:
                live.append(json.loads(record.read_text()))
            except (OSError, ValueError):
                continue  # written atomically by a writer; unreadable means not ours
        return live


def allow_open_files(n: int) -> None:
    """Raise this process's open-file limit (within the hard limit) so it can hold `n` claims at once."""
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256  # headroom for everything else the process has open
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
