"""The panel's link to the background worker: explicit states, errors turned into remedies.

:class:`WorkerLink` (a :class:`QObject` living in the GUI thread) owns a
:class:`worker.client.WorkerClient` that lives in its own :class:`QThread`, so a blocking
call (starting the worker, an enhancement) never freezes the window. Requests go to the
thread as queued signals; answers come back as signals.

States (:class:`WorkerState`), always shown in the window:

=========  ==============================================================================
STARTING   connecting, or starting a worker (loading torch and the model takes seconds)
READY      connected; ``status.device`` names the GPU or says "CPU" (with why not GPU)
BUSY       an enhancement runs (``progress`` reports tiles)
ERROR      the worker cannot be started or reached; ``status.remedy`` says what to do
STOPPED    the worker exited (crashed, killed, or idle for its timeout); the next
           enhancement starts a new one, :meth:`WorkerLink.restart` does it now
=========  ==============================================================================

Failures of one request that leave the worker healthy (a photo too large, out of GPU
memory...) are reported with :attr:`WorkerLink.job_failed` and keep the state READY.

No torch: only :mod:`worker.client` (numpy, pyzmq) and Qt.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from PyQt6.QtCore import QObject, QThread, QTimer, pyqtSignal, pyqtSlot

from plugin.panel.wording import sentence

#: Worker error codes that concern the worker itself (state ERROR / STOPPED), not one job.
_STOPPED_CODES: Final = frozenset({"worker_died", "not_running", "shutting_down"})
_ERROR_CODES: Final = frozenset({"start_failed", "no_model", "timeout", "version_mismatch"})
_TITLES: Final = {
    "start_failed": "The worker could not start",
    "no_model": "No model to run",
    "timeout": "The worker does not answer",
    "version_mismatch": "The worker is from another version",
    "worker_died": "The worker stopped",
    "not_running": "The worker is not running",
    "shutting_down": "The worker stopped",
}
_LIVENESS_MS: Final = 2000


class WorkerState(Enum):
    STARTING = "starting"
    READY = "ready"
    BUSY = "busy"
    ERROR = "error"
    STOPPED = "stopped"


@dataclass(frozen=True)
class WorkerStatus:
    """What the window shows about the worker.

    Attributes:
        state: the connection state.
        title: a few words for the status bar ("Ready: GPU (NVIDIA H100)").
        remedy: one sentence the user can act on, or a note (``""`` when none).
        device: ``"GPU (name)"``, ``"CPU"`` or ``""`` (not known yet).
        code: the :class:`worker.client.WorkerError` code behind ERROR/STOPPED.
    """

    state: WorkerState
    title: str
    remedy: str = ""
    device: str = ""
    code: str = ""


def describe_device(info: dict[str, Any]) -> tuple[str, str]:
    """``("GPU (NVIDIA H100)" | "CPU", note)`` from the worker's ``hello`` info."""
    device = str(info.get("device") or "")
    name = str(info.get("device_name") or "")
    if device.startswith("cuda"):
        return (f"GPU ({name})" if name and name != "cpu" else "GPU"), ""
    note = str(info.get("device_note") or "")
    if "asked for" in note:  # --device cpu: a choice, not a problem
        return "CPU", ""
    return "CPU", (f"No GPU found, running on the CPU ({note.rstrip('.')}); enhancing takes "
                   "longer" if note else "No GPU found, running on the CPU; enhancing takes "
                   "longer")


class _Backend(QObject):
    """Lives in the link's thread and owns the client; every slot may block."""

    connected = pyqtSignal(dict)
    failed = pyqtSignal(int, str, str)  # job (0: connecting), code, message
    progress = pyqtSignal(int, int, int)  # job, done, total
    finished = pyqtSignal(int, object, float, list)  # job, result, seconds, notices
    cancelled = pyqtSignal(int)

    def __init__(self, start_args: tuple[str, ...], runtime_dir: Path | None,
                 timeout: float) -> None:
        super().__init__()
        self.start_args = start_args
        self.runtime_dir = runtime_dir
        self.timeout = timeout
        self.client: Any = None
        self.connected_info: dict[str, Any] = {}

    def _client(self) -> Any:
        if self.client is None:
            from worker.client import WorkerClient

            self.client = WorkerClient(autostart=True, start_args=self.start_args,
                                       timeout=self.timeout, runtime_dir=self.runtime_dir)
        return self.client

    @pyqtSlot()
    def connect_worker(self) -> None:
        from worker.client import WorkerError

        try:
            self.connected.emit(self._client().hello())
        except WorkerError as exc:
            self.failed.emit(0, exc.code, str(exc))
        except Exception as exc:  # a bug must not leave the panel "starting" forever
            self.failed.emit(0, "start_failed", f"the worker could not be reached ({exc})")

    @pyqtSlot(int, object, object, float)
    def enhance(self, job: int, pixels: NDArray[Any], cancel: threading.Event,
                brightness: float) -> None:
        from worker.client import Cancelled, WorkerError

        t0 = time.monotonic()
        try:
            if cancel.is_set():
                raise Cancelled()
            out = self._client().enhance(
                pixels, 1.0, cancel=cancel, brightness=brightness,
                progress=lambda done, total: self.progress.emit(job, done, total))
        except Cancelled:
            self.cancelled.emit(job)
        except WorkerError as exc:
            self.failed.emit(job, exc.code, str(exc))
        except Exception as exc:
            self.failed.emit(job, "internal", f"the enhancement failed ({exc})")
        else:
            client = self._client()
            if isinstance(client.info, dict):
                self.connected_info = dict(client.info)
            self.finished.emit(job, out, time.monotonic() - t0, list(client.notices))

    @pyqtSlot(bool)
    def restart(self, stop_running: bool) -> None:
        """Drop the connection, stop a running (stuck) worker, and connect again."""
        from worker.client import stop_worker

        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
            self.client = None
        if stop_running:
            with contextlib.suppress(Exception):
                stop_worker(self.runtime_dir, timeout=5.0)
        self.connect_worker()

    @pyqtSlot()
    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
            self.client = None
        thread = self.thread()
        if thread is not None:
            thread.quit()


class WorkerLink(QObject):
    """The worker as the window sees it.

    Args:
        start_args: the worker's arguments should the panel start one
            (``--weights``, ``--device``).
        runtime_dir: the worker's folder (tests; default: the user's).
        timeout: seconds without a sign of life before the client gives up.

    Signals:
        status_changed(WorkerStatus): on every state change.
        progress(int, int): tiles done and total of the running job.
        result_ready(int, object, float): job id, enhanced array, seconds.
        job_failed(int, str, str): job id, error code, one-sentence remedy.
        job_cancelled(int): job id.
    """

    status_changed = pyqtSignal(object)
    progress = pyqtSignal(int, int)
    result_ready = pyqtSignal(int, object, float)
    job_failed = pyqtSignal(int, str, str)
    job_cancelled = pyqtSignal(int)

    _do_connect = pyqtSignal()
    _do_enhance = pyqtSignal(int, object, object, float)
    _do_restart = pyqtSignal(bool)
    _do_close = pyqtSignal()

    def __init__(
        self,
        start_args: tuple[str, ...] | list[str] = (),
        runtime_dir: Path | None = None,
        timeout: float = 30.0,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.runtime_dir = runtime_dir
        self.info: dict[str, Any] = {}
        #: Notices of the last result (a GPU-memory fallback...), for the user.
        self.notices: list[str] = []
        #: Enhancement requests sent to the worker (a strength slider move must not add
        #: one; a brightness change adds one once the slider is let go).
        self.requests = 0
        self._status = WorkerStatus(WorkerState.STOPPED, "Not connected")
        self._job = 0
        self._running: int | None = None
        self._cancel = threading.Event()
        self._thread = QThread()
        self._thread.setObjectName("worker-link")
        self._backend = _Backend(tuple(start_args), runtime_dir, timeout)
        self._backend.moveToThread(self._thread)
        self._do_connect.connect(self._backend.connect_worker)
        self._do_enhance.connect(self._backend.enhance)
        self._do_restart.connect(self._backend.restart)
        self._do_close.connect(self._backend.close)
        self._backend.connected.connect(self._on_connected)
        self._backend.failed.connect(self._on_failed)
        self._backend.progress.connect(self._on_progress)
        self._backend.finished.connect(self._on_finished)
        self._backend.cancelled.connect(self._on_cancelled)
        self._thread.start()
        self._watch = QTimer(self)
        self._watch.setInterval(_LIVENESS_MS)
        self._watch.timeout.connect(self.check_alive)
        self._watch.start()

    # ------------------------------------------------------------------ state

    @property
    def status(self) -> WorkerStatus:
        return self._status

    @property
    def state(self) -> WorkerState:
        return self._status.state

    @property
    def busy(self) -> bool:
        return self._running is not None

    def _set(self, status: WorkerStatus) -> None:
        if status != self._status:
            self._status = status
            self.status_changed.emit(status)

    def _ready_status(self) -> WorkerStatus:
        device, note = describe_device(self.info)
        return WorkerStatus(WorkerState.READY, f"Ready: {device}", note, device)

    # ------------------------------------------------------------------ actions

    def start(self) -> None:
        """Connect (starting a worker when none runs)."""
        self._set(WorkerStatus(WorkerState.STARTING, "Starting the worker…",
                               "Loading the model; this takes a few seconds the first time"))
        self._do_connect.emit()

    def restart(self) -> None:
        """Start afresh: cancel the job in flight, stop a stuck worker, connect again."""
        self.cancel()
        stuck = self._status.state is WorkerState.ERROR and self._status.code == "timeout"
        self._set(WorkerStatus(WorkerState.STARTING, "Restarting the worker…",
                               "Loading the model; this takes a few seconds"))
        self._do_restart.emit(stuck)

    def enhance(self, pixels: NDArray[Any], brightness: float = 0.0) -> int:
        """Send ``pixels`` to be enhanced at full strength (the slider blends on this side)
        and ``brightness`` (-1..1, see :func:`hybridnet.contract.check_brightness`: it
        changes what the network sees, so each value is a request of its own); returns the
        job id. A job already running is cancelled first: only the last job's answer is
        delivered."""
        if self._running is not None:
            self.cancel()
        self._job += 1
        self._running = self._job
        self._cancel = threading.Event()
        self.requests += 1
        starting = self._status.state is not WorkerState.READY
        self._set(WorkerStatus(WorkerState.BUSY, "Starting the worker and enhancing…"
                               if starting else "Enhancing…", device=self._status.device))
        self._do_enhance.emit(self._job, np.ascontiguousarray(pixels), self._cancel,
                              float(brightness))
        return self._job

    def cancel(self) -> None:
        """Stop the running job (the worker stops within one tile)."""
        self._cancel.set()

    def check_alive(self) -> None:
        """While idle and ready, notice a worker that went away (no request is sent)."""
        if self._status.state is not WorkerState.READY or self._running is not None:
            return
        from worker.protocol import live_endpoint, runtime_dir

        try:
            alive = live_endpoint(runtime_dir(self.runtime_dir, create=False)) is not None
        except Exception:
            alive = True  # cannot tell; the next request will
        if not alive:
            self._set(WorkerStatus(
                WorkerState.STOPPED, "The worker stopped",
                "It exits when idle for a while, or was closed; the next enhancement "
                "starts it again, or press Restart", code="not_running"))

    def close(self, wait_ms: int = 5000) -> None:
        """Cancel, close the connection and end the thread (the worker keeps running)."""
        self._watch.stop()
        self.cancel()
        if self._thread.isRunning():
            self._do_close.emit()
            if not self._thread.wait(wait_ms):
                self._thread.terminate()
                self._thread.wait(1000)

    # ------------------------------------------------------------------ answers

    def _on_connected(self, info: dict[str, Any]) -> None:
        self.info = info
        if self._running is None:
            self._set(self._ready_status())

    def _on_failed(self, job: int, code: str, message: str) -> None:
        if job and job == self._running:
            self._running = None
        if code in _STOPPED_CODES:
            state = WorkerState.STOPPED
            remedy = message
            if code == "worker_died":
                remedy = ("It crashed or was killed; press Restart (or enhance again) to "
                          "start a new one. Details: `lowlight worker log`")
            self._set(WorkerStatus(state, _TITLES.get(code, "The worker stopped"), remedy,
                                   code=code))
        elif code in _ERROR_CODES or job == 0:
            self._set(WorkerStatus(WorkerState.ERROR, _TITLES.get(code, "Worker error"),
                                   sentence(message), code=code))
        elif self._running is None:
            self._set(self._ready_status())
        if job:
            self.job_failed.emit(job, code, sentence(message))

    def _on_progress(self, job: int, done: int, total: int) -> None:
        if job == self._running:
            self.progress.emit(done, total)

    def _on_finished(self, job: int, result: NDArray[Any], seconds: float,
                     notices: list[str]) -> None:
        if job != self._running:
            return  # a job replaced by a newer one
        self._running = None
        self.notices = notices
        if self._backend.connected_info:  # a new worker may have been started meanwhile
            self.info = self._backend.connected_info
        self._refresh_info_status()
        self.result_ready.emit(job, result, seconds)

    def _on_cancelled(self, job: int) -> None:
        if job == self._running:
            self._running = None
            self._refresh_info_status()
        self.job_cancelled.emit(job)

    def _refresh_info_status(self) -> None:
        self._set(self._ready_status() if self.info else
                  WorkerStatus(WorkerState.READY, "Ready"))


