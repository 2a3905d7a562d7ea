"""A worker process ends when the process that started it dies. Without this, a sweep killed with SIGKILL
(an OOM kill, a cancelled job) leaves its workers training on, re-parented to init, while a resumed sweep
starts the same runs again."""
import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # linux/prctl.h
WATCH_EVERY_S = 0.5


def die_with_parent(parent_pid: int) -> None:
    """Call first thing in a worker: the kernel kills it when its parent dies (Linux), and a watchdog thread
    that notices the parent is gone ends it elsewhere (and backs the kernel up)."""
    _ask_kernel()
    if os.getppid() != parent_pid:  # the parent died before the kernel was asked
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), daemon=True, name="parent-watch").start()


def _ask_kernel() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # no prctl in this libc: the watchdog alone ends the worker


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:  # an orphan is re-parented: its parent pid changes
        time.sleep(WATCH_EVERY_S)
    os._exit(1)
