"""The worker process: holds the model and serves every client over ZeroMQ.

``lowlight worker run`` (what ``lowlight worker start`` and the clients' autostart
detach) calls :func:`serve`. The wire protocol is documented in :mod:`worker.protocol`.

Threads
-------
* The **network thread** (the main thread) owns the ``ROUTER`` socket: it parses and
  validates every request, answers ``hello``/``ping``/``cancel``/``shutdown`` at once,
  queues ``enhance`` jobs, sends heartbeats, forwards the job thread's events and
  enforces the idle timeout. It never runs the model, so it stays responsive during a
  long job.
* The **job thread** runs queued jobs one at a time (one device per worker) through
  :meth:`hybridnet.Enhancer.enhance`, and hands its events (progress per tile, the
  result, errors) to the network thread over an ``inproc`` ``PAIR`` socket.

Memory: a request's pixels are received straight into one ZeroMQ message and used in
place as the input array (``np.frombuffer``, no copy); the enhancer's output is the
second copy; it is sent with ``copy=False``, and the input is released before that.
Nothing else holds a whole image besides the enhancer's own tile work.

Robustness: every message is checked (:func:`worker.protocol.parse_request`,
:func:`hybridnet.contract.check_image`) before the model sees it, every failure is
answered with an ``error`` reply, and no exception from one request can end the loop.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import logging
import logging.handlers
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Final, Literal

import zmq
from numpy.typing import NDArray

from lowlight import __version__
from worker.protocol import (
    DEFAULT_IDLE_TIMEOUT,
    ENDPOINT_FILE,
    LOCK_FILE,
    LOG_FILE,
    PROTOCOL_VERSION,
    SOCKET_FILE,
    EndpointInfo,
    ErrorCode,
    Event,
    InstanceLock,
    Limits,
    Op,
    ProtocolError,
    Request,
    UnsafeDirectoryError,
    array_to_frame,
    encode_header,
    error_header,
    frame_to_array,
    ipc_endpoint,
    parse_enhance,
    parse_request,
    parse_target,
    read_endpoint_file,
    reply_header,
    runtime_dir,
    state_dir,
    write_endpoint_file,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from hybridnet.enhancer import Enhancer

log = logging.getLogger("worker")

_INBOX: Final = "inproc://worker-jobs"
#: Exit statuses of ``worker run``.
EXIT_OK: Final = 0
EXIT_START_FAILED: Final = 1
EXIT_NO_MODEL: Final = 3
_LOG_BYTES: Final = 1_000_000
_LOG_BACKUPS: Final = 3
_FINAL: Final = b"F"
_PROGRESS: Final = b"P"


@dataclass
class ServerOptions:
    """What ``lowlight worker start``/``run`` accept (see :mod:`worker.cli`)."""

    weights: Path | None = None
    device: str = "auto"
    tcp: bool = False
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    threads: int | None = None
    runtime_dir: Path | None = None
    max_pixels: int | None = None
    max_queue: int | None = None
    ready_fd: int | None = None


class StartError(Exception):
    """The worker cannot start; ``code`` is ``start_failed`` or ``no_model``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Job:
    """One ``enhance`` request, queued or running."""

    identity: bytes
    id: int
    image: NDArray[Any] | None
    strength: float | Literal["auto"]
    tile_size: int | None
    spec_fields: dict[str, Any]
    brightness: float = 0.0
    cancel: threading.Event = field(default_factory=threading.Event)
    #: Why ``cancel`` was set: ``cancelled``, ``shutting_down`` or ``gone`` (client left).
    reason: str = ErrorCode.CANCELLED.value
    started: bool = False
    #: The final event was already sent (or the client is gone): drop later events.
    finished: bool = False
    done: int = 0
    total: int = 0

    @property
    def key(self) -> tuple[bytes, int]:
        return (self.identity, self.id)


class JobQueue:
    """FIFO of jobs shared by the two threads; queued jobs can be withdrawn."""

    def __init__(self) -> None:
        self._items: deque[Job | None] = deque()
        self._cond = threading.Condition()

    def put(self, job: Job | None) -> None:
        with self._cond:
            self._items.append(job)
            self._cond.notify()

    def take(self) -> Job | None:
        """The next job (marked started), or ``None`` to stop; blocks."""
        with self._cond:
            while not self._items:
                self._cond.wait()
            job = self._items.popleft()
            if job is not None:
                job.started = True
            return job

    def withdraw(self, job: Job) -> bool:
        """Remove ``job`` if it has not started; ``True`` when it was removed."""
        with self._cond:
            if job.started or job not in self._items:
                return False
            self._items.remove(job)
            return True

    def position(self, job: Job) -> int:
        with self._cond:
            try:
                return [j for j in self._items if j is not None].index(job)
            except ValueError:
                return 0

    def drain(self) -> list[Job]:
        """Remove and return every job that has not started."""
        with self._cond:
            jobs = [j for j in self._items if j is not None]
            self._items.clear()
            return jobs


# --------------------------------------------------------------------------- model


@dataclass
class Model:
    """The loaded enhancer and what ``hello`` says about it."""

    enhancer: Enhancer
    device: torch.device
    device_note: str | None
    info: dict[str, Any]


def load_model(weights: Path | None, device: str, threads: int | None) -> Model:
    """Import torch, choose the device (saying why not CUDA) and load the weights once.

    Raises:
        StartError: ``no_model`` for weights that cannot be loaded, ``start_failed``
            for a device that cannot be used.
    """
    import torch

    from hybridnet.enhancer import BUNDLED_WEIGHTS, Enhancer
    from hybridnet.errors import WeightsError

    if threads:
        torch.set_num_threads(threads)
    chosen, note = pick_device(device)
    try:
        try:
            enhancer = Enhancer(weights, device=chosen)
        except torch.cuda.OutOfMemoryError:
            note = "the GPU ran out of memory while loading the model; running on the CPU"
            log.warning(note)
            torch.cuda.empty_cache()
            chosen = torch.device("cpu")
            enhancer = Enhancer(weights, device=chosen)
    except WeightsError as exc:
        raise StartError(ErrorCode.NO_MODEL.value, str(exc)) from exc
    except (ValueError, OSError, RuntimeError) as exc:
        raise StartError(ErrorCode.START_FAILED.value, f"the model could not be loaded: {exc}") \
            from exc
    path = enhancer.weights_path
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else None
    from dataclasses import asdict

    name = "cpu" if chosen.type == "cpu" else torch.cuda.get_device_name(chosen)
    info = {
        "name": "HybridNet (Ren et al., IEEE TIP 2019)",
        "weights": str(path.resolve()) if path is not None else None,
        "bundled": path is not None and path.resolve() == BUNDLED_WEIGHTS.resolve(),
        "sha256": digest,
        "config": asdict(enhancer.config),
        "device_name": name,
        "threads": torch.get_num_threads(),
    }
    return Model(enhancer, chosen, note, info)


def pick_device(requested: str) -> tuple[torch.device, str | None]:
    """The device for ``auto``/``cpu``/``cuda[:n]`` and, when not the GPU, why not.

    Raises:
        StartError: ``cuda`` was asked for and cannot be used (with the reason).
    """
    import torch

    if requested == "cpu":
        return torch.device("cpu"), "the CPU was asked for (--device cpu)"
    if torch.cuda.is_available():
        return torch.device("cuda" if requested == "auto" else requested), None
    reason = why_no_cuda()
    if requested != "auto":
        raise StartError(
            ErrorCode.START_FAILED.value,
            f"--device {requested} was asked for but {reason}; use --device auto or cpu",
        )
    log.info("running on the CPU: %s", reason)
    return torch.device("cpu"), reason


def why_no_cuda() -> str:
    """One clause saying why CUDA cannot be used (build, driver or no GPU)."""
    import torch

    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return "this PyTorch build has no CUDA support (a CPU-only wheel)"
    try:
        torch.cuda.init()  # type: ignore[no-untyped-call]
    except Exception as exc:  # the driver's own words
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"CUDA could not start ({first}): check the NVIDIA driver"
    if torch.cuda.device_count() == 0:
        return "no CUDA GPU was found"
    return "CUDA is not available"


# --------------------------------------------------------------------------- server


class RateLimitedLog:
    """A warning that may repeat thousands of times a second (a flood of bad messages)
    written at most once per ``interval_s``, with the count of the repeats left out.

    Without it one client that stopped reading its replies rotated the whole log away
    in seconds, taking the lines that mattered with it.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger, self.interval_s, self.clock = logger, interval_s, clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, message: str) -> None:
        now = self.clock()
        last = self._last.get(message)
        if last is not None and now - last < self.interval_s:
            self._held[message] = self._held.get(message, 0) + 1
            return
        held = self._held.pop(message, 0)
        self._last[message] = now
        if held:
            since = now - last if last is not None else 0.0
            self.logger.warning("%s (and %d more like it in the last %.0f s)", message, held,
                                since)
        else:
            self.logger.warning("%s", message)


class WorkerServer:
    """The network loop and the job thread around one loaded :class:`Model`."""

    def __init__(
        self,
        model: Model,
        *,
        limits: Limits,
        idle_timeout: float,
        directory: Path,
        tcp: bool,
    ) -> None:
        self.model = model
        self.limits = limits
        self.idle_timeout = idle_timeout
        self.directory = directory
        self.started = time.time()
        self.stopping = False
        self.stop_reason = "stopped"
        self.jobs: dict[tuple[bytes, int], Job] = {}
        self._rate_limited = RateLimitedLog(log)
        self.queue = JobQueue()
        self.last_activity = time.monotonic()
        self.ctx = zmq.Context()
        self.auth: Any = None
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router.setsockopt(zmq.MAXMSGSIZE, limits.max_message_bytes)
        self.router.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        self.router.setsockopt(zmq.HEARTBEAT_TIMEOUT, 10000)
        self.router.setsockopt(zmq.SNDHWM, 10000)
        self.info = self._bind(tcp)
        self.inbox = self.ctx.socket(zmq.PAIR)
        self.inbox.setsockopt(zmq.LINGER, 0)
        self.inbox.bind(_INBOX)
        self.thread = threading.Thread(target=self._job_loop, name="worker-jobs", daemon=True)

    # ------------------------------------------------------------------ setup

    def _bind(self, tcp: bool) -> EndpointInfo:
        keys: dict[str, str] = {}
        if tcp or sys.platform == "win32":
            from zmq.auth.thread import ThreadAuthenticator

            server_public, server_secret = zmq.curve_keypair()
            client_public, client_secret = zmq.curve_keypair()
            self.auth = ThreadAuthenticator(self.ctx)
            self.auth.start()
            self.auth.allow("127.0.0.1")
            self.auth.configure_curve_callback("*", credentials_provider=_OneKey(client_public))
            self.router.setsockopt(zmq.CURVE_SERVER, 1)
            self.router.setsockopt(zmq.CURVE_SECRETKEY, server_secret)
            self.router.setsockopt(zmq.CURVE_PUBLICKEY, server_public)
            self.router.bind("tcp://127.0.0.1:0")
            endpoint = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
            transport = "tcp"
            keys = {
                "server_public_key": server_public.decode("ascii"),
                "client_public_key": client_public.decode("ascii"),
                "client_secret_key": client_secret.decode("ascii"),
            }
        else:
            endpoint = ipc_endpoint(self.directory)
            sock = self.directory / SOCKET_FILE
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()  # a crashed worker's socket; we hold the lock
            self.router.bind(endpoint)
            os.chmod(sock, 0o600)
            transport = "ipc"
        return EndpointInfo(
            endpoint=endpoint, pid=os.getpid(), transport=transport,
            protocol=PROTOCOL_VERSION, app_version=__version__, started=self.started, **keys,
        )

    def hello_info(self) -> dict[str, Any]:
        """``hello``'s ``info`` map (see :func:`worker.protocol.hello_info_keys`)."""
        model = dict(self.model.info)
        return {
            "protocol": PROTOCOL_VERSION,
            "app_version": __version__,
            "pid": os.getpid(),
            "endpoint": self.info.endpoint,
            "transport": self.info.transport,
            "device": str(self.model.enhancer.device),
            "device_name": model.pop("device_name"),
            "device_note": self.model.device_note,
            "threads": model.pop("threads"),
            "model": model,
            "limits": self.limits.to_dict(),
            "started": self.started,
            "uptime_s": time.time() - self.started,
            "queue": len(self.jobs),
            "idle_timeout_s": self.idle_timeout,
        }

    # ------------------------------------------------------------------ loop

    def serve_forever(self) -> None:
        """Run until ``shutdown``, a signal, or the idle timeout."""
        self.thread.start()
        write_endpoint_file(self.directory / ENDPOINT_FILE, self.info)
        log.info("serving on %s (pid %d, device %s)", self.info.endpoint, os.getpid(),
                 self.model.enhancer.device)
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.inbox, zmq.POLLIN)
        beat = self.limits.heartbeat_s
        next_beat = time.monotonic() + beat
        while not self.stopping:
            wait = max(0.0, min(next_beat - time.monotonic(), 0.25))
            ready = dict(poller.poll(int(wait * 1000)))
            if self.inbox in ready:
                self._drain_inbox()
            if self.router in ready:
                self._drain_router()
            now = time.monotonic()
            if now >= next_beat:
                self._heartbeat()
                next_beat = now + beat
            if (
                self.idle_timeout > 0 and not self.jobs
                and now - self.last_activity > self.idle_timeout
            ):
                self.stop_reason = f"idle for {self.idle_timeout:g} s"
                self.stopping = True
        self._close()

    def _drain_router(self) -> None:
        for _ in range(64):  # then look at the job thread's events again
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self.last_activity = time.monotonic()
            identity = frames[0].bytes
            try:
                self._handle(identity, frames[1:])
            except ProtocolError as exc:
                self._send(identity, error_header(exc.request_id, exc.op, exc.code, str(exc),
                                                  **exc.extra))
            except Exception as exc:  # a bug must never end the loop
                log.exception("unexpected error handling a request")
                self._send(identity, error_header(
                    None, None, ErrorCode.INTERNAL,
                    f"the worker failed on this request ({type(exc).__name__}: {exc}); "
                    "see `lowlight worker log`",
                ))
            if self.stopping:
                return

    def _handle(self, identity: bytes, frames: Sequence[zmq.Frame]) -> None:
        buffers = [f.buffer for f in frames]
        request = parse_request(buffers, self.limits)
        if request.op is Op.HELLO:
            self._reply(identity, request, info=self.hello_info())
        elif request.op is Op.PING:
            self._reply(identity, request, time=time.time())
        elif request.op is Op.ENHANCE:
            self._enqueue(identity, request, buffers[1])
        elif request.op is Op.CANCEL:
            self._cancel(identity, request, parse_target(request))
        elif request.op is Op.SHUTDOWN:
            log.info("shutdown asked for by a client")
            self._reply(identity, request)
            self.stop_reason = "asked to shut down"
            self.stopping = True

    def _reply(self, identity: bytes, request: Request, **fields: Any) -> None:
        self._send(identity, reply_header(request.id, request.op.value, Event.REPLY, **fields))

    def _enqueue(self, identity: bytes, request: Request, pixels: memoryview) -> None:
        from hybridnet.contract import check_image
        from hybridnet.errors import InvalidImageError

        args = parse_enhance(request, self.limits)
        op = request.op.value
        if (identity, request.id) in self.jobs:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"request id {request.id} is already in "
                                "use by a job of this connection; use a new id", request.id, op)
        mine = sum(1 for key in self.jobs if key[0] == identity)
        if mine >= self.limits.max_jobs_per_connection or len(self.jobs) >= self.limits.max_queue:
            raise ProtocolError(
                ErrorCode.BUSY, f"the worker already has {len(self.jobs)} images to enhance "
                f"({mine} from this client); wait for them to finish and try again",
                request.id, op,
            )
        try:
            image = frame_to_array(pixels, args.spec)  # a view of the received frame
        except ProtocolError as exc:
            exc.request_id, exc.op = request.id, op
            raise
        try:
            check_image(image)
        except InvalidImageError as exc:
            raise ProtocolError(ErrorCode.BAD_REQUEST, str(exc), request.id, op) from None
        job = Job(identity, request.id, image, args.strength, args.tile_size,
                  args.spec.to_fields(), brightness=args.brightness)
        self.jobs[job.key] = job
        self.queue.put(job)
        self._send(identity, reply_header(job.id, op, Event.QUEUED,
                                          position=self.queue.position(job)))

    def _cancel(self, identity: bytes, request: Request, target: int) -> None:
        job = self.jobs.get((identity, target))
        found = job is not None and not job.finished
        if job is not None and found:
            job.cancel.set()
            if self.queue.withdraw(job):
                self._finish(job, error_header(job.id, Op.ENHANCE.value, ErrorCode.CANCELLED,
                                               "the enhancement was cancelled"))
        self._reply(identity, request, cancelled=found)

    def _finish(self, job: Job, header: dict[str, Any]) -> None:
        """Send a job's final event from this thread and forget the job."""
        job.finished = True
        job.image = None
        self.jobs.pop(job.key, None)
        self._send(job.identity, header)

    def _drain_inbox(self) -> None:
        while True:
            try:
                frames = self.inbox.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            control, identity = frames[0].bytes, frames[1].bytes
            key = (identity, int.from_bytes(control[1:9], "big"))
            job = self.jobs.get(key)
            if control[:1] == _FINAL:
                self.jobs.pop(key, None)
                self.last_activity = time.monotonic()
            if job is None or job.finished:
                continue
            if control[:1] == _FINAL:
                job.finished = True
            self._send(identity, frames[2:])

    def _heartbeat(self) -> None:
        for job in list(self.jobs.values()):
            if job.finished:
                continue
            if job.started:
                header = reply_header(job.id, Op.ENHANCE.value, Event.PROGRESS,
                                      done=job.done, total=job.total)
            else:
                header = reply_header(job.id, Op.ENHANCE.value, Event.QUEUED,
                                      position=self.queue.position(job))
            self._send(job.identity, header)

    def _send(self, identity: bytes, message: dict[str, Any] | Sequence[Any]) -> None:
        """Send to one client; a client that has gone away gets its jobs cancelled."""
        frames = [encode_header(message)] if isinstance(message, dict) else list(message)
        try:
            self.router.send_multipart([identity, *frames], zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self._rate_limited.warning("a client does not read its replies; dropped one")
        except zmq.ZMQError as exc:
            if exc.errno != errno.EHOSTUNREACH:
                raise
            self._client_gone(identity)

    def _client_gone(self, identity: bytes) -> None:
        for job in [j for j in self.jobs.values() if j.identity == identity]:
            log.info("client left; cancelling its request %d", job.id)
            job.reason = "gone"
            job.cancel.set()
            job.finished = True
            if self.queue.withdraw(job) or not job.started:
                job.image = None
            self.jobs.pop(job.key, None)

    def _close(self) -> None:
        log.info("stopping: %s", self.stop_reason)
        for job in self.queue.drain():
            self._finish(job, error_header(job.id, Op.ENHANCE.value, ErrorCode.SHUTTING_DOWN,
                                           "the worker is shutting down; send the image again "
                                           "to start a new one"))
        for job in list(self.jobs.values()):
            job.reason = ErrorCode.SHUTTING_DOWN.value
            job.cancel.set()
            self._finish(job, error_header(job.id, Op.ENHANCE.value, ErrorCode.SHUTTING_DOWN,
                                           "the worker is shutting down; send the image again "
                                           "to start a new one"))
        self.queue.put(None)
        self.thread.join(timeout=10)
        with contextlib.suppress(zmq.ZMQError):
            self._drain_inbox()
        # A short linger so that the last replies (the shutdown answer) reach the clients.
        self.router.setsockopt(zmq.LINGER, 500)
        self.router.close()
        self.inbox.close()
        if self.auth is not None:
            self.auth.stop()
        self.ctx.term()

    # ------------------------------------------------------------------ job thread

    def _job_loop(self) -> None:
        out = self.ctx.socket(zmq.PAIR)
        out.setsockopt(zmq.LINGER, 0)
        out.connect(_INBOX)
        try:
            while True:
                job = self.queue.take()
                if job is None:
                    return
                try:
                    self._run(job, out)
                except Exception:  # pragma: no cover - _run catches everything itself
                    log.exception("job thread error")
        finally:
            out.close()

    def _run(self, job: Job, out: zmq.Socket[Any]) -> None:
        import torch

        from hybridnet.enhancer import EnhanceCancelled
        from hybridnet.errors import InvalidImageError

        control = job.id.to_bytes(8, "big")
        enhancer = self.model.enhancer

        def post(kind: bytes, header: dict[str, Any], *pixels: Any) -> None:
            out.send_multipart([kind + control, job.identity, encode_header(header), *pixels],
                               copy=False)

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total
            post(_PROGRESS, reply_header(job.id, Op.ENHANCE.value, Event.PROGRESS,
                                         done=done, total=total))

        op = Op.ENHANCE.value
        image = job.image
        job.image = None
        if image is None or job.cancel.is_set():
            return
        log.info("enhancing %s %s (request %d)", job.spec_fields["shape"],
                 job.spec_fields["dtype"], job.id)
        start = time.perf_counter()
        try:
            result = enhancer.enhance(image, job.strength, progress, job.cancel,
                                      tile_size=job.tile_size, brightness=job.brightness)
            seconds = time.perf_counter() - start
            del image  # the input's frame is freed once the network thread drops it too
            header = reply_header(job.id, op, Event.RESULT, **job.spec_fields,
                                  notices=list(enhancer.notices), compute_s=seconds)
            post(_FINAL, header, array_to_frame(result))
            log.info("request %d done in %.2f s", job.id, seconds)
        except EnhanceCancelled:
            log.info("request %d cancelled (%s)", job.id, job.reason)
            code = ErrorCode.SHUTTING_DOWN if job.reason == "shutting_down" else \
                ErrorCode.CANCELLED
            post(_FINAL, error_header(job.id, op, code, "the enhancement was cancelled"))
        except (MemoryError, torch.cuda.OutOfMemoryError):
            log.exception("out of memory on request %d", job.id)
            post(_FINAL, error_header(
                job.id, op, ErrorCode.OUT_OF_MEMORY,
                f"not enough memory to enhance this image on the {enhancer.device}; try a "
                "smaller tile size or a smaller image",
            ))
        except InvalidImageError as exc:
            post(_FINAL, error_header(job.id, op, ErrorCode.BAD_REQUEST, str(exc)))
        except Exception as exc:
            log.exception("request %d failed", job.id)
            post(_FINAL, error_header(
                job.id, op, ErrorCode.INTERNAL,
                f"the worker failed on this image ({type(exc).__name__}: {exc}); see "
                "`lowlight worker log`",
            ))
        finally:
            self._back_to_device(enhancer)

    def _back_to_device(self, enhancer: Enhancer) -> None:
        """After a GPU-memory fallback to the CPU, try the GPU again for the next job."""
        if enhancer.device == self.model.device:
            return
        import torch

        try:
            torch.cuda.empty_cache()
            enhancer.model.to(self.model.device)
            enhancer.device = self.model.device
            log.info("back on %s", self.model.device)
        except torch.cuda.OutOfMemoryError:
            enhancer.model.to(enhancer.device)
            log.warning("staying on the CPU: the GPU is still out of memory")


class _OneKey:
    """ZAP CURVE callback admitting exactly one client public key (Z85)."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def callback(self, domain: str, key: bytes) -> bool:
        return hmac.compare_digest(key, self.key)


# --------------------------------------------------------------------------- entry


class _Reporter:
    """Tells the process that launched us (``--ready-fd``) how the start went, once."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def send(self, **status: Any) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self.fd, (json.dumps(status) + "\n").encode())
            os.close(self.fd)
        self.fd = None


def serve(options: ServerOptions) -> int:
    """Start the worker in this process and serve until it stops; the exit status.

    Order: private folders, the instance lock (a second worker reports the first and
    exits 0), logging, the model (seconds), the socket, the endpoint file; then it tells
    the launcher it is ready.
    """
    os.umask(0o077)  # everything the worker creates is private to the user
    report = _Reporter(options.ready_fd)
    foreground = options.ready_fd is None
    try:
        directory = runtime_dir(options.runtime_dir)
        logs = state_dir()
    except (UnsafeDirectoryError, OSError) as exc:
        return _fail(report, StartError(ErrorCode.START_FAILED.value, str(exc)))
    lock = InstanceLock(directory / LOCK_FILE)
    if not lock.acquire():
        pid = InstanceLock.holder_pid(directory / LOCK_FILE)
        report.send(status="running", pid=pid)
        print(f"a worker is already running (pid {pid}); using it", file=sys.stderr)
        return EXIT_OK
    handler = _setup_logging(logs / LOG_FILE, foreground)
    server: WorkerServer | None = None
    try:
        stop_signals(lambda: _stop(server))
        log.info("starting (pid %d, app %s, protocol %d)", os.getpid(), __version__,
                 PROTOCOL_VERSION)
        model = load_model(options.weights, options.device, options.threads)
        limits = Limits()
        if options.max_pixels is not None:
            limits = replace(limits, max_pixels=options.max_pixels)
        if options.max_queue is not None:
            limits = replace(limits, max_queue=options.max_queue,
                             max_jobs_per_connection=min(limits.max_jobs_per_connection,
                                                         options.max_queue))
        try:
            server = WorkerServer(model, limits=limits, idle_timeout=options.idle_timeout,
                                  directory=directory, tcp=options.tcp)
        except (zmq.ZMQError, ValueError, OSError) as exc:
            raise StartError(ErrorCode.START_FAILED.value,
                             f"the worker could not open its socket: {exc}") from exc
        report.send(status="ready", pid=os.getpid(), endpoint=server.info.endpoint)
        if foreground:
            print(f"worker ready on {server.info.endpoint} (pid {os.getpid()}, "
                  f"{model.enhancer.device}); Ctrl-C stops it", file=sys.stderr)
        server.serve_forever()
        return EXIT_OK
    except StartError as exc:
        log.error("could not start: %s", exc)
        return _fail(report, exc)
    except SystemExit:
        report.send(status="error", code=ErrorCode.START_FAILED.value,
                    message="the worker was stopped by a signal while starting")
        raise
    except BaseException as exc:
        log.exception("the worker stopped on an error")
        report.send(status="error", code=ErrorCode.START_FAILED.value,
                    message=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        _remove_own_files(directory)
        lock.release()
        logging.getLogger().removeHandler(handler)
        handler.close()


def _stop(server: WorkerServer | None) -> None:
    if server is None:  # still loading the model: leave now (the finally cleans up)
        raise SystemExit(EXIT_START_FAILED)
    server.stopping = True


def _fail(report: _Reporter, exc: StartError) -> int:
    report.send(status="error", code=exc.code, message=str(exc))
    print(f"lowlight worker: {exc}", file=sys.stderr)
    return EXIT_NO_MODEL if exc.code == ErrorCode.NO_MODEL.value else EXIT_START_FAILED


def _remove_own_files(directory: Path) -> None:
    info = read_endpoint_file(directory / ENDPOINT_FILE)
    if info is not None and info.pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            (directory / ENDPOINT_FILE).unlink()
        if info.transport == "ipc":
            with contextlib.suppress(FileNotFoundError):
                (directory / SOCKET_FILE).unlink()


def _setup_logging(path: Path, foreground: bool) -> logging.Handler:
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=_LOG_BYTES, backupCount=_LOG_BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s %(levelname)s [{os.getpid()}] %(name)s: %(message)s"
    ))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    if foreground and not any(isinstance(h, logging.StreamHandler)
                              and not isinstance(h, logging.FileHandler)
                              for h in root.handlers):
        console = logging.StreamHandler()
        console.setLevel(logging.WARNING)
        root.addHandler(console)
    return handler


def stop_signals(stop: Callable[[], None]) -> None:
    """SIGTERM/SIGINT/SIGHUP end the loop cleanly (endpoint file removed, lock released)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop()

    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and threading.current_thread() is threading.main_thread():
            signal.signal(sig, handler)

