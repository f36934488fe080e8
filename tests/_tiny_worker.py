"""A real background worker running a tiny model, for the batch and panel tests.

The weights are written by a *subprocess* (``torch.manual_seed(0)`` and
``HybridNetConfig.tiny()``), so the test process itself need not import torch; the
worker runs in a private ``XDG_RUNTIME_DIR`` per test module, so no test ever reaches a
real user's worker, and it is stopped (or killed) when the module is done.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1]

_WRITE = (
    "import sys, torch, hybridnet\n"
    "torch.manual_seed(0)\n"
    "hybridnet.save_model(hybridnet.HybridNet(hybridnet.HybridNetConfig.tiny()), sys.argv[1])\n"
)


def write_tiny_weights(path: Path) -> Path:
    """Write the seeded tiny model to ``path`` in a separate interpreter."""
    subprocess.run([sys.executable, "-c", _WRITE, str(path)], check=True, cwd=ROOT,
                   timeout=300)
    return path


def start_args(weights: Path) -> list[str]:
    return ["--weights", str(weights), "--device", "cpu", "--threads", "1"]


def worker_folder() -> Path:
    """The worker's folder for the current ``XDG_RUNTIME_DIR``."""
    from worker.protocol import runtime_dir

    return runtime_dir(None, create=False)


def worker_pid() -> int | None:
    """The pid of the live worker of this test's runtime folder, or ``None``."""
    from worker.client import worker_status

    status = worker_status()
    return int(status["pid"]) if status else None


def stop_worker_here() -> None:
    """Stop the worker of this test's runtime folder (politely, then by its pid)."""
    from worker.protocol import LOCK_FILE, InstanceLock

    folder = worker_folder()
    if not folder.is_dir():
        return
    with contextlib.suppress(Exception):
        from worker.client import stop_worker

        stop_worker(folder, timeout=5.0)
    lock = folder / LOCK_FILE
    with contextlib.suppress(OSError):
        pid = InstanceLock.holder_pid(lock)
        if InstanceLock.held(lock) and pid:
            os.kill(pid, signal.SIGKILL)


def kill_worker(timeout: float = 10.0) -> int:
    """SIGKILL the running worker; returns its pid once it is gone."""
    from worker.protocol import LOCK_FILE, InstanceLock

    pid = worker_pid()
    assert pid is not None, "no worker runs"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while InstanceLock.held(worker_folder() / LOCK_FILE) and time.monotonic() < deadline:
        time.sleep(0.02)
    return pid


@contextlib.contextmanager
def private_runtime(root: Path) -> Iterator[Path]:
    """Point ``XDG_RUNTIME_DIR`` at ``root/run`` (mode 0700); stop its worker on exit."""
    run = root / "run"
    run.mkdir(mode=0o700, parents=True, exist_ok=True)
    old = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(run)
    try:
        yield run
    finally:
        stop_worker_here()
        if old is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = old


def dark_image(h: int, w: int, dtype: type = np.uint8, channels: int = 3,
               seed: int = 0) -> NDArray[np.generic]:
    """A dark, smooth test photo (values well below mid-grey) with a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([0.10 + 0.10 * xx, 0.08 + 0.06 * yy, 0.05 + 0.05 * xx * yy], -1)
    base = np.clip(base + rng.normal(0, 0.01, base.shape), 0, 1)
    if channels == 1:
        base = base[..., 1]
    elif channels == 4:
        base = np.concatenate([base, np.ones((h, w, 1))], -1)
    if dtype is np.float32:
        return base.astype(np.float32)
    return np.round(base * np.iinfo(dtype).max).astype(dtype)


def make_exif(model: str = "TestCam X1") -> bytes:
    """EXIF (TIFF-structured, without the ``Exif\\0\\0`` prefix) naming a camera."""
    from PIL import Image

    ex = Image.Exif()
    ex[0x0110] = model  # Model
    ex[0x0112] = 1  # Orientation
    return ex.tobytes()[6:]
