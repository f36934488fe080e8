"""Shared fixtures. Tests use tiny model configs so the suite stays fast on 2 cores."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _torch_threads() -> None:
    """Keep torch on at most 2 threads (the CI machine has 2 cores)."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True, scope="session")
def _private_worker_dirs() -> Iterator[Path]:
    """Point the worker's runtime and state folders at a fresh temporary folder.

    ``lowlight enhance`` uses the background worker by default and starts one when none
    runs; this keeps every test away from the real user's worker, socket and log, and
    stops a worker the tests started there at the end of the session. (Short path: a
    Unix socket path has at most 107 bytes.)
    """
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="ell-", dir="/tmp" if os.path.isdir("/tmp") else None))
    (root / "run").mkdir(mode=0o700)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_RUNTIME_DIR", str(root / "run"))
        mp.setenv("XDG_STATE_HOME", str(root / "state"))
        yield root
        _stop_worker_in(root / "run" / "enhance-low-light")
    shutil.rmtree(root, ignore_errors=True)


def _stop_worker_in(folder: Path) -> None:
    """Stop a worker holding ``folder``'s lock (asked politely, then killed by its pid)."""
    import signal

    if not folder.is_dir():
        return
    try:
        from worker.client import stop_worker
        from worker.protocol import LOCK_FILE, InstanceLock

        try:
            stop_worker(folder, timeout=5.0)
        except Exception:
            pass
        lock = folder / LOCK_FILE
        pid = InstanceLock.holder_pid(lock)
        if InstanceLock.held(lock) and pid:
            os.kill(pid, signal.SIGKILL)
    except (ImportError, OSError):
        pass
