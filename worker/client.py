"""The worker's client library: what the CLI, the desktop panel and GIMP use.

No torch and no Qt: it imports numpy, pyzmq, msgpack, :mod:`worker.protocol` and the
numpy-only image contract (:mod:`hybridnet.contract`).

.. code-block:: python

    from worker.client import WorkerClient, WorkerError, Cancelled

    with WorkerClient() as worker:            # starts the worker when none runs
        out = worker.enhance(pixels, 0.8, progress=lambda done, total: ...)
        print(worker.notices)                 # e.g. a GPU-memory fallback

Connection states (:class:`ConnectionState`): ``disconnected`` -> ``starting`` (only
while this client launches a worker) -> ``connected``; any failure drops back to
``disconnected`` and the next call reconnects (and, with ``autostart``, starts a new
worker). Every failure is a :class:`WorkerError` whose ``code`` is machine-readable and
whose message is one sentence a user can act on.

Threads: a client may be used from any thread (the panel calls it from a ``QThread``);
calls are serialised by a lock, and ``progress`` is called from the calling thread.

Autostart: when no live worker answers, the client runs ``python -m worker launch``,
which starts ``python -m worker run ...`` in a new session (so the worker outlives the
client and is not its child), waits until it reports ready on a pipe (or fails, with
the reason) and exits. ``LOWLIGHT_WORKER_PYTHON`` names the interpreter to use when the
calling program's own Python cannot run the model (GIMP's bundled Python, say).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import zmq
from numpy.typing import NDArray

from worker.protocol import (
    LOCK_FILE,
    OUT_FILE,
    PROTOCOL_VERSION,
    RETRIES,
    EndpointInfo,
    ErrorCode,
    Event,
    InstanceLock,
    Limits,
    Op,
    PixelSpec,
    ProtocolError,
    Reply,
    UnsafeDirectoryError,
    array_to_frame,
    encode_header,
    frame_to_array,
    live_endpoint,
    parse_reply,
    request_header,
    runtime_dir,
    state_dir,
    version_message,
)

log = logging.getLogger("worker.client")

#: Seconds a starting worker may take to load torch and the model.
START_TIMEOUT: Final = 120.0
#: How often a waiting client checks that the worker process still exists.
_ALIVE_CHECK_S: Final = 0.5
_POLL_MS: Final = 50

Strength = float | Literal["auto"]
ProgressFn = Callable[[int, int], None]
CancelArg = threading.Event | Callable[[], bool] | None
#: ``on_wait(seconds_waited)`` while a busy worker has no place for the image yet.
WaitFn = Callable[[float], None]
#: Pauses between asks when the worker's queue is full (growing by half each time).
BUSY_POLL_MIN_S = 0.1
BUSY_POLL_MAX_S = 1.0


class ConnectionState(StrEnum):
    DISCONNECTED = "disconnected"
    STARTING = "starting"
    CONNECTED = "connected"


class WorkerError(Exception):
    """The worker could not do what was asked; ``str(exc)`` says what to do.

    Attributes:
        code: ``start_failed``, ``not_running``, ``no_model``, ``timeout``,
            ``version_mismatch``, ``worker_died``, ``bad_request``, ``too_large``,
            ``busy``, ``out_of_memory``, ``cancelled``, ``shutting_down``, ``internal``
            (see :class:`worker.protocol.ErrorCode`).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Cancelled(WorkerError):
    """The request was cancelled (by ``cancel``); nothing is returned."""

    def __init__(self, message: str = "the enhancement was cancelled") -> None:
        super().__init__(ErrorCode.CANCELLED.value, message)


class _Silence(Exception):
    """No sign of life from the worker for the timeout (internal: triggers a retry)."""


class WorkerClient:
    """One connection to the worker, reused for every call.

    Args:
        autostart: start a worker when none runs (else ``not_running`` errors).
        start_args: arguments for the worker when this client starts one, e.g.
            ``["--weights", "/abs/model.safetensors", "--device", "cpu"]`` (see
            ``lowlight worker start --help``); ignored when a worker already runs.
        timeout: seconds without any sign of life (reply, progress or heartbeat) before
            the request is resent (Lazy Pirate, :data:`worker.protocol.RETRIES` times)
            and finally given up.
        runtime_dir: the worker's private folder (default: see :mod:`worker.protocol`).
    """

    def __init__(
        self,
        *,
        autostart: bool = True,
        start_args: Sequence[str] = (),
        timeout: float = 30.0,
        runtime_dir: Path | None = None,
    ) -> None:
        self.autostart = autostart
        self.start_args = tuple(start_args)
        self.timeout = float(timeout)
        self.runtime_dir = runtime_dir
        #: Notices of the last call for the user (GPU-memory fallbacks...).
        self.notices: list[str] = []
        #: Seconds the worker spent enhancing in the last :meth:`enhance`.
        self.last_compute_s: float | None = None
        #: ``hello`` info of the connected worker (``None`` until connected).
        self.info: dict[str, Any] | None = None
        self.state = ConnectionState.DISCONNECTED
        self._lock = threading.RLock()
        self._ctx: zmq.Context[Any] | None = None
        self._sock: zmq.Socket[Any] | None = None
        self._endpoint: EndpointInfo | None = None
        self._directory: Path | None = None
        self._limits = Limits()
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ public

    def hello(self) -> dict[str, Any]:
        """The worker's versions, device (and why not the GPU), model, limits and pid."""
        with self._lock:
            reply, _ = self._call(Op.HELLO)
            info = reply.fields.get("info")
            if not isinstance(info, dict):
                raise WorkerError(ErrorCode.INTERNAL.value, "the worker sent a hello without "
                                  "info; run `lowlight worker stop` and try again")
            self.info = info
            return info

    def ping(self) -> float:
        """Round-trip time to the worker in seconds."""
        with self._lock:
            start = time.perf_counter()
            self._call(Op.PING)
            return time.perf_counter() - start

    def enhance(
        self,
        image: NDArray[Any],
        strength: Strength = 1.0,
        *,
        progress: ProgressFn | None = None,
        cancel: CancelArg = None,
        tile_size: int | None = None,
        brightness: float = 0.0,
        on_wait: WaitFn | None = None,
    ) -> NDArray[Any]:
        """Enhance ``image`` in the worker; blocks, same shape and dtype out.

        A worker whose queue is full (other clients' images) is not an error: the call
        waits its turn, asking again with a growing pause (at most
        :data:`BUSY_POLL_MAX_S`), and ``on_wait(seconds_waited)`` is called each time.

        Args:
            image: an array of the image contract (:mod:`hybridnet.contract`).
            strength: 0..1 or ``"auto"``.
            progress: called as ``progress(done, total)`` per tile, from this thread.
            cancel: a :class:`threading.Event` or a callable, polled while waiting;
                when set, the worker is told and :class:`Cancelled` is raised (the job
                stops within one tile).
            tile_size: maximum tile side (default: the worker decides from its memory).
            brightness: -1..1; 0 the automatic exposure, 1 brighter, -1 darker.
            on_wait: called while waiting for a place in a busy worker's queue.

        Raises:
            Cancelled: ``cancel`` fired.
            WorkerError: anything else (see :class:`WorkerError`).
        """
        from hybridnet.contract import check_brightness, check_image, check_strength
        from hybridnet.errors import InvalidImageError

        with self._lock:
            self.notices = []
            self.last_compute_s = None
            try:
                check_image(image)
                if strength != "auto":
                    check_strength(strength)
                brightness = check_brightness(brightness)
            except InvalidImageError as exc:
                raise WorkerError(ErrorCode.BAD_REQUEST.value, str(exc)) from None
            if tile_size is not None and not 136 <= tile_size <= 65536:
                raise WorkerError(ErrorCode.BAD_REQUEST.value,
                                  f"tile_size must be from 136 to 65536 pixels, got {tile_size}")
            frame = array_to_frame(image)  # the array itself unless big-endian/strided
            spec = PixelSpec.of(frame)
            if _cancelled(cancel):
                raise Cancelled()
            self._ensure_connected(self.autostart)
            if spec.pixels > self._limits.max_pixels:
                raise WorkerError(
                    ErrorCode.TOO_LARGE.value,
                    f"the image has {spec.pixels / 1e6:.1f} megapixels, more than the "
                    f"worker's limit of {self._limits.max_pixels / 1e6:.0f}; scale it down",
                )
            fields = {**spec.to_fields(), "strength": strength if strength == "auto"
                      else float(strength), "tile_size": tile_size, "brightness": brightness}
            reply, pixels = self._call_in_turn(fields, frame, progress, cancel, on_wait)
            result_spec = PixelSpec.parse(reply.fields, Limits(max_pixels=spec.pixels,
                                                               max_side=1 << 30))
            if pixels is None or result_spec != spec:
                raise WorkerError(ErrorCode.INTERNAL.value, "the worker sent a result of "
                                  "another shape; run `lowlight worker stop` and try again")
            out = frame_to_array(pixels.buffer, spec)  # writable, no copy
            if out.dtype != image.dtype:
                out = out.astype(image.dtype)
            notices = reply.fields.get("notices", [])
            waited = self.notices  # what _call_in_turn said about waiting
            self.notices = waited + ([str(n) for n in notices] if isinstance(notices, list)
                                     else [])
            compute = reply.fields.get("compute_s")
            self.last_compute_s = float(compute) if isinstance(compute, int | float) else None
            return out

    def _call_in_turn(
        self, fields: dict[str, Any], frame: NDArray[Any], progress: ProgressFn | None,
        cancel: CancelArg, on_wait: WaitFn | None,
    ) -> tuple[Reply, zmq.Frame | None]:
        """:meth:`_call` for one image, waiting while the worker's queue is full."""
        waited, pause = 0.0, BUSY_POLL_MIN_S
        while True:
            try:
                reply = self._call(Op.ENHANCE, fields, frame, progress=progress, cancel=cancel)
            except WorkerError as exc:
                if exc.code != ErrorCode.BUSY.value:
                    raise
            else:
                if waited:
                    self.notices = [f"the worker was busy with other images; this one "
                                    f"waited {waited:.0f} s for its turn"]
                return reply
            if on_wait is not None:
                on_wait(waited)
            end = time.monotonic() + pause
            while time.monotonic() < end:
                if _cancelled(cancel):
                    raise Cancelled()
                time.sleep(min(0.05, max(0.0, end - time.monotonic())))
            waited += pause
            pause = min(pause * 1.5, BUSY_POLL_MAX_S)

    def shutdown(self) -> None:
        """Ask the running worker to exit (nothing happens when none runs); waits for it."""
        with self._lock:
            try:
                self._ensure_connected(autostart=False)
            except WorkerError as exc:
                if exc.code == ErrorCode.NOT_RUNNING.value:
                    return
                raise
            endpoint = self._endpoint
            with contextlib.suppress(WorkerError):
                self._call(Op.SHUTDOWN, retries=0)
            self._disconnect()
            if endpoint is not None and self._directory is not None:
                _wait_gone(self._directory, endpoint.pid, 15.0)

    def close(self) -> None:
        """Close the connection (the worker keeps running)."""
        with self._lock:
            self._disconnect()
            if self._ctx is not None:
                self._ctx.term()
                self._ctx = None

    def __enter__(self) -> WorkerClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ connection

    def _folder(self) -> Path:
        try:
            return runtime_dir(self.runtime_dir, create=True)
        except (UnsafeDirectoryError, OSError) as exc:
            raise WorkerError(ErrorCode.START_FAILED.value,
                              f"the worker's folder cannot be used: {exc}") from None

    def _ensure_connected(self, autostart: bool, _stale_retry: bool = False) -> None:
        if self._sock is not None:
            if self._worker_alive():
                return
            self._disconnect()  # it exited (idle timeout, `worker stop`) since the last call
        directory = self._folder()
        try:
            endpoint = live_endpoint(directory)
        except UnsafeDirectoryError as exc:
            raise WorkerError(ErrorCode.START_FAILED.value, str(exc)) from None
        if endpoint is None:
            if not autostart:
                raise WorkerError(ErrorCode.NOT_RUNNING.value,
                                  "the worker is not running; start it with "
                                  "`lowlight worker start`")
            self.state = ConnectionState.STARTING
            try:
                endpoint, _ = start_worker(self.start_args, runtime_dir=self.runtime_dir)
            finally:
                self.state = ConnectionState.DISCONNECTED
        self._directory = directory
        self._open(endpoint)
        try:
            reply, _ = self._exchange(Op.HELLO, {}, None, None, None)
        except WorkerError as exc:
            self._disconnect()
            if exc.code == ErrorCode.WORKER_DIED.value and not _stale_retry:
                # The endpoint was a crashed worker's, read in the instant a new worker
                # had taken the lock but not yet written its pid: look again.
                return self._ensure_connected(autostart, _stale_retry=True)
            raise
        except _Silence:
            self._disconnect()
            raise WorkerError(
                ErrorCode.TIMEOUT.value,
                f"the worker (pid {endpoint.pid}) does not answer; stop it with `lowlight "
                f"worker stop` (or kill {endpoint.pid}) and try again",
            ) from None
        except BaseException:
            self._disconnect()
            raise
        info = reply.fields.get("info")
        if not isinstance(info, dict) or info.get("protocol") != PROTOCOL_VERSION:
            self._disconnect()
            theirs = info.get("protocol") if isinstance(info, dict) else "?"
            raise WorkerError(ErrorCode.VERSION_MISMATCH.value,
                              version_message(PROTOCOL_VERSION, theirs))
        self.info = info
        limits = info.get("limits")
        self._limits = Limits.from_dict(limits) if isinstance(limits, dict) else Limits()
        self.state = ConnectionState.CONNECTED

    def _open(self, endpoint: EndpointInfo) -> None:
        if self._ctx is None:
            self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 10000)
        if endpoint.transport == "tcp":
            if not (endpoint.server_public_key and endpoint.client_secret_key
                    and endpoint.client_public_key):
                sock.close()
                raise WorkerError(ErrorCode.START_FAILED.value,
                                  "the worker's endpoint file has no CURVE keys; run "
                                  "`lowlight worker stop` and start it again")
            sock.setsockopt(zmq.CURVE_SERVERKEY, endpoint.server_public_key.encode())
            sock.setsockopt(zmq.CURVE_PUBLICKEY, endpoint.client_public_key.encode())
            sock.setsockopt(zmq.CURVE_SECRETKEY, endpoint.client_secret_key.encode())
        sock.connect(endpoint.endpoint)
        self._sock = sock
        self._endpoint = endpoint

    def _disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        self.state = ConnectionState.DISCONNECTED

    def _worker_alive(self) -> bool:
        if self._endpoint is None or self._directory is None:
            return False
        lock = self._directory / LOCK_FILE
        return InstanceLock.held(lock) and InstanceLock.holder_pid(lock) == self._endpoint.pid

    # ------------------------------------------------------------------ requests

    def _call(
        self,
        op: Op,
        fields: dict[str, Any] | None = None,
        pixels: NDArray[Any] | None = None,
        *,
        progress: ProgressFn | None = None,
        cancel: CancelArg = None,
        retries: int = RETRIES,
    ) -> tuple[Reply, zmq.Frame | None]:
        """Send one request and wait for its final event, with Lazy Pirate retries."""
        attempt = 0
        while True:
            self._ensure_connected(self.autostart and op is not Op.SHUTDOWN)
            try:
                return self._exchange(op, fields or {}, pixels, progress, cancel)
            except _Silence:
                self._disconnect()
                if attempt >= retries:
                    raise WorkerError(
                        ErrorCode.TIMEOUT.value,
                        f"the worker did not answer for {self.timeout:g} s ({attempt + 1} "
                        "tries); see `lowlight worker log`, or run `lowlight worker stop` "
                        "and try again",
                    ) from None
                attempt += 1
                log.warning("no answer from the worker; resending (%d of %d)", attempt, retries)

    def _exchange(
        self,
        op: Op,
        fields: dict[str, Any],
        pixels: NDArray[Any] | None,
        progress: ProgressFn | None,
        cancel: CancelArg,
    ) -> tuple[Reply, zmq.Frame | None]:
        sock = self._sock
        assert sock is not None
        rid = next(self._ids)
        header = encode_header(request_header(op, rid, **fields))
        if pixels is None:
            sock.send(header)
        else:
            sock.send_multipart([header, pixels.data.cast("B")], copy=False)
        try:
            return self._wait(rid, progress, cancel)
        except (WorkerError, _Silence):
            raise
        except BaseException:  # Ctrl-C, an error in ``progress``: drop the connection, so
            self._disconnect()  # the worker sees the client gone and cancels the job
            raise

    def _wait(
        self, rid: int, progress: ProgressFn | None, cancel: CancelArg
    ) -> tuple[Reply, zmq.Frame | None]:
        sock = self._sock
        assert sock is not None
        last_sign = time.monotonic()
        next_check = last_sign + _ALIVE_CHECK_S
        cancel_sent = False
        last = (-1, -1)
        while True:
            if cancel is not None and not cancel_sent and _cancelled(cancel):
                sock.send(encode_header(request_header(Op.CANCEL, next(self._ids), target=rid)))
                cancel_sent = True
            if sock.poll(_POLL_MS, zmq.POLLIN):
                frames = sock.recv_multipart(copy=False)
                last_sign = time.monotonic()
                try:
                    reply = parse_reply(frames[0].buffer)
                except ProtocolError as exc:
                    self._disconnect()
                    raise WorkerError(exc.code.value, str(exc)) from None
                if reply.id != rid and not (reply.id is None and reply.event is Event.ERROR):
                    continue  # a heartbeat or answer of an older request, or the cancel's
                if reply.event is Event.PROGRESS:
                    done, total = reply.fields.get("done"), reply.fields.get("total")
                    if (
                        progress is not None and isinstance(done, int)
                        and isinstance(total, int) and total > 0 and (done, total) != last
                    ):
                        last = (done, total)  # heartbeats repeat the last progress
                        progress(done, total)
                    continue
                if reply.event is Event.QUEUED:
                    continue
                if reply.event is Event.ERROR:
                    if reply.code == ErrorCode.CANCELLED.value or cancel_sent:
                        raise Cancelled()
                    raise _error(reply)
                if cancel_sent:
                    raise Cancelled()
                return reply, (frames[1] if len(frames) > 1 else None)
            now = time.monotonic()
            if now >= next_check:
                next_check = now + _ALIVE_CHECK_S
                if not self._worker_alive():
                    pid = self._endpoint.pid if self._endpoint else "?"
                    self._disconnect()
                    raise WorkerError(
                        ErrorCode.WORKER_DIED.value,
                        f"the worker (pid {pid}) stopped while handling this request (it "
                        "crashed or was killed; see `lowlight worker log`); the next request "
                        "starts a new one",
                    )
            if now - last_sign > self.timeout:
                raise _Silence()


def _error(reply: Reply) -> WorkerError:
    message = reply.message or f"the worker reported {reply.code}"
    if reply.code == ErrorCode.VERSION_MISMATCH.value:
        theirs = reply.fields.get("worker_protocol", "?")
        message = version_message(PROTOCOL_VERSION, theirs)
    return WorkerError(reply.code or ErrorCode.INTERNAL.value, message)


def _cancelled(cancel: CancelArg) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def _wait_gone(directory: Path, pid: int, seconds: float) -> bool:
    """Wait until the worker ``pid`` no longer holds the lock; ``True`` when it is gone."""
    lock = directory / LOCK_FILE
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not InstanceLock.held(lock) or InstanceLock.holder_pid(lock) != pid:
            return True
        time.sleep(0.05)
    return False


# --------------------------------------------------------------------------- start/stop


def start_worker(
    args: Sequence[str] = (),
    *,
    runtime_dir: Path | None = None,
    timeout: float = START_TIMEOUT,
) -> tuple[EndpointInfo, bool]:
    """Start a detached worker unless one runs; ``(endpoint, started_now)``.

    Returns when the worker answers (its endpoint file is written after its socket is
    bound). Two clients starting at once end up with the same worker: the second
    worker process finds the lock taken, says so and exits, and its client waits for the
    first one.

    Raises:
        WorkerError: ``no_model`` or ``start_failed``, with the worker's own reason.
    """
    directory = _folder_of(runtime_dir)
    running = live_endpoint(directory)
    if running is not None:
        return running, False
    run_args = _absolute(args)
    if runtime_dir is not None:
        run_args += ["--runtime-dir", str(Path(runtime_dir).resolve())]
    status = _run_launcher(run_args, timeout)
    kind = status.get("status")
    if kind == "error":
        code = str(status.get("code") or ErrorCode.START_FAILED.value)
        if code not in (ErrorCode.NO_MODEL.value, ErrorCode.TIMEOUT.value):
            code = ErrorCode.START_FAILED.value
        reason = str(status.get("message") or "no reason given").rstrip(".")
        raise WorkerError(code, f"the worker is not running and could not be started: {reason}")
    deadline = time.monotonic() + timeout
    while True:  # "ready": it is up; "running": another start holds the lock, wait for it
        found = live_endpoint(directory)
        if found is not None:
            return found, kind == "ready" and found.pid == status.get("pid")
        if time.monotonic() > deadline or not InstanceLock.held(directory / LOCK_FILE):
            raise WorkerError(
                ErrorCode.START_FAILED.value,
                "the worker is not running and could not be started: another worker was "
                "starting but did not get ready; see `lowlight worker log`",
            )
        time.sleep(0.05)


def stop_worker(runtime_dir: Path | None = None, timeout: float = 10.0) -> int | None:
    """Stop the running worker (``shutdown``, then SIGTERM); its pid, or ``None`` if none ran."""
    directory = _folder_of(runtime_dir)
    endpoint = live_endpoint(directory)
    if endpoint is None:
        return None
    with WorkerClient(autostart=False, timeout=min(timeout, 5.0),
                      runtime_dir=runtime_dir) as client:
        with contextlib.suppress(WorkerError):
            client.shutdown()
    if not _wait_gone(directory, endpoint.pid, timeout):
        with contextlib.suppress(OSError):
            import signal

            os.kill(endpoint.pid, signal.SIGTERM)
        if not _wait_gone(directory, endpoint.pid, timeout):
            raise WorkerError(ErrorCode.TIMEOUT.value,
                              f"the worker (pid {endpoint.pid}) does not stop; kill it with "
                              f"`kill -9 {endpoint.pid}`")
    return endpoint.pid


def _folder_of(override: Path | None) -> Path:
    try:
        return runtime_dir(override, create=True)
    except (UnsafeDirectoryError, OSError) as exc:
        raise WorkerError(ErrorCode.START_FAILED.value,
                          f"the worker's folder cannot be used: {exc}") from None


_PATH_OPTIONS: Final = ("--weights", "--runtime-dir")


def _absolute(args: Sequence[str]) -> list[str]:
    """Make path options absolute (the worker runs from ``/``, not the caller's folder)."""
    out = list(args)
    for i, arg in enumerate(out):
        for opt in _PATH_OPTIONS:
            if arg == opt and i + 1 < len(out):
                out[i + 1] = str(Path(out[i + 1]).expanduser().resolve())
            elif arg.startswith(opt + "="):
                out[i] = f"{opt}={Path(arg[len(opt) + 1:]).expanduser().resolve()}"
    return out


def _python() -> str:
    return os.environ.get("LOWLIGHT_WORKER_PYTHON") or sys.executable


def _child_env() -> dict[str, str]:
    """The environment of the worker: ours, plus this checkout on ``PYTHONPATH``."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _run_launcher(run_args: list[str], timeout: float) -> dict[str, Any]:
    cmd = [_python(), "-m", "worker", "launch", "--timeout", str(timeout), "--", *run_args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30,
                              env=_child_env(), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"status": "error", "code": "start_failed",
                "message": f"{cmd[0]} could not be run ({exc})"}
    for line in reversed(proc.stdout.splitlines()):
        with contextlib.suppress(ValueError):
            status = json.loads(line)
            if isinstance(status, dict):
                return status
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"status": "error", "code": "start_failed",
            "message": f"the launcher failed ({tail})"}


def launch(run_args: Sequence[str], timeout: float) -> dict[str, Any]:
    """Start ``python -m worker run ARGS`` detached and report how its start went.

    This runs in the short-lived ``python -m worker launch`` process, so the worker is
    not a child of the client (it is re-parented when the launcher exits and never
    becomes a zombie of a long-running panel). POSIX: the worker writes one JSON line to
    an inherited pipe (``--ready-fd``) once ready or failed. Windows: no fd passing; the
    endpoint file is polled and the worker's output file gives the reason of a failure.
    """
    try:
        out_path = state_dir() / OUT_FILE
        out = os.fdopen(os.open(out_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
    except (UnsafeDirectoryError, OSError) as exc:
        return {"status": "error", "code": "start_failed",
                "message": f"the worker's state folder cannot be used: {exc}"}
    cmd = [sys.executable, "-m", "worker", "run"]
    with out:
        if sys.platform == "win32":
            return _launch_windows(cmd, list(run_args), out, out_path, timeout)
        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(
                [*cmd, "--ready-fd", str(write_fd), *run_args], stdin=subprocess.DEVNULL,
                stdout=out, stderr=out, pass_fds=(write_fd,), start_new_session=True,
                cwd="/", env=_child_env(),
            )
        except OSError as exc:
            os.close(read_fd)
            return {"status": "error", "code": "start_failed",
                    "message": f"{sys.executable} could not be run ({exc})"}
        finally:
            os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            line = _read_line(pipe.fileno(), timeout)
    if line:
        with contextlib.suppress(ValueError):
            status = json.loads(line)
            if isinstance(status, dict):
                return status
    if line is None:
        return {"status": "error", "code": "timeout",
                "message": f"it did not get ready within {timeout:g} s (pid {proc.pid} may "
                           "still be loading; see `lowlight worker log`)"}
    try:
        code = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        code = None
    return {"status": "error", "code": "start_failed",
            "message": f"it exited with status {code} ({_last_line(out_path)})"}


def _read_line(fd: int, timeout: float) -> str | None:
    """One line from ``fd``: the text (``""`` on EOF without one), ``None`` on timeout."""
    import select

    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").strip()


def _launch_windows(
    cmd: list[str], run_args: list[str], out: Any, out_path: Path, timeout: float
) -> dict[str, Any]:  # pragma: no cover - no Windows machine in CI
    flags = 0x00000008 | 0x00000200 | 0x08000000  # DETACHED | NEW_PROCESS_GROUP | NO_WINDOW
    directory = _folder_of(_runtime_override(run_args))
    proc = subprocess.Popen([*cmd, *run_args], stdin=subprocess.DEVNULL, stdout=out,
                            stderr=out, creationflags=flags, cwd=str(Path.home()),
                            env=_child_env())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = live_endpoint(directory)
        if found is not None:
            return {"status": "ready" if found.pid == proc.pid else "running",
                    "pid": found.pid, "endpoint": found.endpoint}
        code = proc.poll()
        if code is not None:
            if code == 0:
                return {"status": "running", "pid": None}
            return {"status": "error", "code": "no_model" if code == 3 else "start_failed",
                    "message": _last_line(out_path)}
        time.sleep(0.1)
    return {"status": "error", "code": "timeout",
            "message": f"it did not get ready within {timeout:g} s"}


def _runtime_override(run_args: Sequence[str]) -> Path | None:
    for i, arg in enumerate(run_args):
        if arg == "--runtime-dir" and i + 1 < len(run_args):
            return Path(run_args[i + 1])
    return None


def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4096))
            lines = fh.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return "no output"
    return lines[-1] if lines else "no output"


# --------------------------------------------------------------------------- module level

_shared: WorkerClient | None = None
_shared_lock = threading.Lock()


def shared_client() -> WorkerClient:
    """The process-wide client behind :func:`enhance` (created on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = WorkerClient()
            import atexit

            atexit.register(_shared.close)
        return _shared


def enhance(
    image: NDArray[Any],
    strength: Strength = 1.0,
    progress: ProgressFn | None = None,
    cancel: CancelArg = None,
    brightness: float = 0.0,
) -> NDArray[Any]:
    """Enhance ``image`` in the worker over one shared, reused connection (autostarts)."""
    return shared_client().enhance(image, strength, progress=progress, cancel=cancel,
                                   brightness=brightness)


def worker_status(runtime_dir: Path | None = None) -> dict[str, Any] | None:
    """The endpoint file's public contents when a live worker answers a ping, else ``None``.

    (The client's CURVE secret key is left out.)
    """
    try:
        directory = _runtime(runtime_dir)
        endpoint = live_endpoint(directory) if directory is not None else None
    except (UnsafeDirectoryError, OSError):
        return None
    if endpoint is None:
        return None
    try:
        with WorkerClient(autostart=False, timeout=5.0, runtime_dir=runtime_dir) as client:
            client._call(Op.PING, retries=0)
    except WorkerError:
        return None
    return endpoint.public()


def _runtime(override: Path | None) -> Path | None:
    path = runtime_dir(override, create=False)
    return path if path.is_dir() else None

