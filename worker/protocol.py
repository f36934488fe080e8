"""The worker's wire protocol: the one module both sides of the socket share.

It imports numpy and msgpack only (no torch, no Qt, not even ZeroMQ), so every client --
the CLI, the desktop panel, the GIMP bridge, a client in another language -- can follow
it. This docstring is the reference for anyone writing a client.

Transport
---------
ZeroMQ. The worker binds one ``ROUTER`` socket; each client connects one ``DEALER``.
Every message is a *multipart* message:

=========  =================================================================
frame      content
=========  =================================================================
0          header: a msgpack map with string keys (at most ``max_header_bytes``)
1          pixels, only for ``enhance`` requests and ``result`` replies: the raw,
           C-contiguous, little-endian bytes of the array, sent and received without
           copying (``copy=False``; numpy buffers straight into and out of ZeroMQ)
=========  =================================================================

A message with any other number of frames is a ``bad_request``.

Endpoint
--------
Default: ``ipc://<runtime dir>/worker.sock``, where the runtime dir is
``$XDG_RUNTIME_DIR/enhance-low-light`` or, without it, ``/tmp/enhance-low-light-<uid>``;
it is created with mode 0700 and refused (never used) when it is not a real directory
owned by the user with no group/other permissions, so other local users cannot reach the
socket. ``lowlight worker start --tcp`` (and Windows, which has no ``ipc://``) binds
``tcp://127.0.0.1:<random port>`` with **CURVE** security: the worker makes a fresh server
key pair and one client key pair at every start and its ZAP handler admits only that
client key. CURVE was chosen over a token in the header because it authenticates (and
encrypts) at the handshake: a peer without the key never gets a single byte to the
worker's message parser, so it cannot make the worker receive a 2 GB frame just to be
refused, and nothing travels in clear over loopback.

Discovery: the worker writes ``<runtime dir>/worker.json`` (mode 0600, atomically) with
``endpoint``, ``pid``, ``transport`` (``"ipc"``/``"tcp"``), ``protocol``, ``app_version``,
``started`` (Unix time) and, for tcp, ``server_public_key``, ``client_public_key`` and
``client_secret_key`` (Z85). A client reads it (refusing a file that is not the user's
or that others could read), connects and says ``hello``. ``worker.lock`` beside it is
held (``flock``) by the running worker for its lifetime: one worker per user.

Request header
--------------
==============  ==========================================================  =========
key             value                                                       ops
==============  ==========================================================  =========
``v``           protocol version of the sender (int)                        all
``id``          request id chosen by the client, int ``0 <= id < 2**53``;   all
                every reply to this request carries it
``op``          ``hello``, ``enhance``, ``cancel``, ``ping``, ``shutdown``  all
``shape``       ``[H, W]`` or ``[H, W, C]``                                 enhance
``dtype``       ``"uint8"``, ``"uint16"`` or ``"float32"`` (little-endian)  enhance
``layout``      ``"gray"`` (C = 1 or no C), ``"gray+alpha"`` (2),           enhance
                ``"rgb"`` (3), ``"rgba"`` (4): must agree with ``shape``
``strength``    number in [0, 1] or ``"auto"`` (default 1)                  enhance
``brightness``  number in [-1, 1] (default 0): 2 stops per unit from the     enhance
                automatic exposure (older weights: as if darkened by gamma
                3 + brightness), :func:`hybridnet.contract.brightness_to_ev`
``tile_size``   ``null`` (worker decides) or an int in [136, 65536]          enhance
``target``      id of the request to cancel (same connection)              cancel
==============  ==========================================================  =========

The pixel frame must hold exactly ``H·W·C·itemsize`` bytes; the image must also satisfy
the image contract (:mod:`hybridnet.contract`: finite float values...). Unknown keys are
ignored (so later versions can add optional fields without a version bump).

Reply header
------------
Every reply has ``v``, ``id`` (``null`` when the request's id could not be read), ``op``
(the request's op, or ``null``) and ``event``:

* ``reply`` -- the answer to ``hello`` (``info``: see :func:`hello_info_keys`),
  ``ping`` (``time``: the worker's clock), ``cancel`` (``cancelled``: whether a job was
  found) and ``shutdown`` (no fields; the worker exits right after).
* ``queued`` -- an ``enhance`` job waits; ``position`` = jobs ahead of it.
* ``progress`` -- ``done`` of ``total`` tiles finished.
* ``result`` -- final for ``enhance``: ``shape``, ``dtype``, ``layout`` (equal to the
  request's), ``notices`` (list of sentences for the user, e.g. a GPU-memory fallback),
  ``compute_s`` (seconds the worker spent enhancing); frame 1 holds the pixels.
* ``error`` -- final for any op: ``code`` (below) and ``message``, one sentence a user
  can act on. ``version_mismatch`` errors also carry ``worker_protocol``.

Error codes
-----------
Sent by the worker: ``bad_request`` (malformed frames, header, types, shape, truncated
pixels), ``unknown_op``, ``version_mismatch``, ``too_large`` (over a limit below),
``busy`` (queue full), ``cancelled``, ``out_of_memory``, ``shutting_down``,
``internal`` (a bug: see the worker's log). Raised by the client library only:
``not_running``, ``start_failed``, ``no_model`` (the worker could not load its weights),
``timeout``, ``worker_died``.

Limits (sent in ``hello``'s ``info["limits"]``)
------------------------------------------------
``max_header_bytes`` (64 KiB), ``max_pixels`` (150 megapixels by default),
``max_side`` (65535), ``max_message_bytes`` (= ``max_pixels``·16, the biggest legal pixel
frame; the worker sets ``ZMQ_MAXMSGSIZE`` to it, so ZeroMQ drops a connection that sends
more, without a reply), ``max_queue`` (jobs waiting or running, all clients),
``max_jobs_per_connection``, ``heartbeat_s``. Sockets use ``LINGER`` 0.

Heartbeats
----------
While a client has a job queued or running, the worker sends it a ``queued`` or
``progress`` event at least every ``heartbeat_s`` (1 s), even in the middle of a long
tile, from its network thread. A client that hears nothing for its timeout treats the
worker as hung or gone; a client on the same machine also checks the worker's pid. The
worker sends those heartbeats with ``ROUTER_MANDATORY``: when a client has gone away, the
send fails and the client's jobs are cancelled (within one tile). ZeroMQ's own ZMTP
heartbeats (``HEARTBEAT_IVL``) are enabled on both sides as well, for tcp.

Retries
-------
Clients use the *Lazy Pirate* pattern: no sign of life for the timeout -> close the
socket (``LINGER`` 0), reconnect, resend with a new id, at most :data:`RETRIES` times;
then give up with a message saying what to do.

Versioning
----------
:data:`PROTOCOL_VERSION` changes with every incompatible change. Both sides check ``v``
on every message; a mismatch is answered with ``version_mismatch`` (never silence), and
the error reply's shape -- a msgpack map with ``v``, ``id``, ``op``, ``event = "error"``,
``code``, ``message`` -- is frozen for all versions so that any client can show it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Literal

import msgpack
import numpy as np
from numpy.typing import NDArray

#: Incremented on every incompatible change of this protocol.
PROTOCOL_VERSION: Final = 2
#: Lazy Pirate: how many times a request is resent after a silent timeout.
RETRIES: Final = 2
#: Folder name under the runtime and state directories.
APP_DIR: Final = "enhance-low-light"
ENDPOINT_FILE: Final = "worker.json"
LOCK_FILE: Final = "worker.lock"
SOCKET_FILE: Final = "worker.sock"
LOG_FILE: Final = "worker.log"
#: Standard output and error of the detached worker (tracebacks of hard crashes).
OUT_FILE: Final = "worker.out"
#: Longest ``ipc://`` path a Unix socket can take (Linux: 108 bytes with the NUL).
MAX_IPC_PATH: Final = 107
#: Smallest tile side the enhancer accepts (2 · overlap 64 + 8).
MIN_TILE_SIZE: Final = 136
MAX_TILE_SIZE: Final = 65536
MAX_ID: Final = 2**53
#: Seconds without requests after which the worker exits (``--idle-timeout``; 0 = never).
DEFAULT_IDLE_TIMEOUT: Final = 1800.0

DTYPES: Final[dict[str, np.dtype[Any]]] = {
    "uint8": np.dtype("<u1"),
    "uint16": np.dtype("<u2"),
    "float32": np.dtype("<f4"),
}
LAYOUTS: Final[dict[str, int]] = {"gray": 1, "gray+alpha": 2, "rgb": 3, "rgba": 4}


class Op(StrEnum):
    """Operations a client can ask for."""

    HELLO = "hello"
    ENHANCE = "enhance"
    CANCEL = "cancel"
    PING = "ping"
    SHUTDOWN = "shutdown"


class Event(StrEnum):
    """Kinds of reply; ``reply``, ``result`` and ``error`` end a request."""

    REPLY = "reply"
    QUEUED = "queued"
    PROGRESS = "progress"
    RESULT = "result"
    ERROR = "error"

    @property
    def final(self) -> bool:
        return self in (Event.REPLY, Event.RESULT, Event.ERROR)


class ErrorCode(StrEnum):
    """Machine-readable error kinds (see the module docstring)."""

    BAD_REQUEST = "bad_request"
    UNKNOWN_OP = "unknown_op"
    VERSION_MISMATCH = "version_mismatch"
    TOO_LARGE = "too_large"
    BUSY = "busy"
    CANCELLED = "cancelled"
    OUT_OF_MEMORY = "out_of_memory"
    SHUTTING_DOWN = "shutting_down"
    INTERNAL = "internal"
    # raised by the client library only
    NOT_RUNNING = "not_running"
    START_FAILED = "start_failed"
    NO_MODEL = "no_model"
    TIMEOUT = "timeout"
    WORKER_DIED = "worker_died"


@dataclass(frozen=True)
class Limits:
    """What the worker accepts; sent in ``hello`` so a client can check before sending."""

    max_header_bytes: int = 64 * 1024
    max_pixels: int = 150_000_000
    max_side: int = 65535
    max_queue: int = 16
    max_jobs_per_connection: int = 4
    heartbeat_s: float = 1.0

    @property
    def max_message_bytes(self) -> int:
        """Biggest legal frame: an RGBA float32 image of ``max_pixels`` (header: less)."""
        return max(self.max_pixels * 16, self.max_header_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "max_message_bytes": self.max_message_bytes}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Limits:
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in raw.items() if k in names})


class ProtocolError(Exception):
    """A message that breaks the protocol; carries what is needed to answer it.

    Attributes:
        code: an :class:`ErrorCode`.
        request_id: the request's id when it could be read, else ``None``.
        op: the request's op when it could be read, else ``None``.
        extra: more header fields for the error reply.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        request_id: int | None = None,
        op: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id
        self.op = op
        self.extra = extra


# --------------------------------------------------------------------------- headers


def encode_header(header: Mapping[str, Any]) -> bytes:
    """A header map as msgpack bytes."""
    data = msgpack.packb(dict(header), use_bin_type=True)
    assert isinstance(data, bytes)
    return data


def decode_header(data: bytes | memoryview, max_bytes: int) -> dict[str, Any]:
    """Decode a header frame; :class:`ProtocolError` (``bad_request``) when it is not one."""
    if len(data) > max_bytes:
        raise ProtocolError(
            ErrorCode.TOO_LARGE, f"the header has {len(data)} bytes, more than the "
            f"worker's limit of {max_bytes}; send the pixels in the second frame"
        )
    try:
        obj = msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=True,
            max_str_len=max_bytes, max_bin_len=max_bytes, max_array_len=max_bytes,
            max_map_len=max_bytes, max_ext_len=max_bytes,
        )
    except Exception as exc:  # msgpack raises many types on garbage
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"the header frame is not valid msgpack ({type(exc).__name__}); "
            "send a msgpack map as the first frame",
        ) from None
    if not isinstance(obj, dict):
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"the header is a msgpack {type(obj).__name__}, not a map; send a map with "
            "the keys v, id and op",
        )
    return obj


def request_header(op: Op | str, request_id: int, **fields: Any) -> dict[str, Any]:
    """The header of a request (``v``, ``id``, ``op`` and the op's fields)."""
    return {"v": PROTOCOL_VERSION, "id": request_id, "op": str(op), **fields}


def reply_header(
    request_id: int | None, op: str | None, event: Event, **fields: Any
) -> dict[str, Any]:
    """The header of a reply event."""
    return {"v": PROTOCOL_VERSION, "id": request_id, "op": op, "event": str(event), **fields}


def error_header(
    request_id: int | None, op: str | None, code: ErrorCode | str, message: str, **extra: Any
) -> dict[str, Any]:
    """The header of an ``error`` reply (its shape is frozen across versions)."""
    return reply_header(request_id, op, Event.ERROR, code=str(code), message=message, **extra)


def version_message(client: object, worker: object) -> str:
    """The one sentence shown to a user when the two sides speak different versions."""
    older = "worker" if _as_int(worker, 0) < _as_int(client, 0) else "client"
    return (
        f"this client speaks protocol {client} but the worker speaks {worker}: update "
        f"Enhance Low Light (the {older} is older) and run `lowlight worker stop` so that "
        "the next request starts the new worker"
    )


def _as_int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class PixelSpec:
    """Shape, dtype and channel layout of a pixel frame."""

    shape: tuple[int, ...]
    dtype: str
    layout: str

    @property
    def numpy_dtype(self) -> np.dtype[Any]:
        return DTYPES[self.dtype]

    @property
    def pixels(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.numpy_dtype.itemsize

    def to_fields(self) -> dict[str, Any]:
        """The header fields ``shape``, ``dtype``, ``layout``."""
        return {"shape": list(self.shape), "dtype": self.dtype, "layout": self.layout}

    @classmethod
    def of(cls, array: NDArray[Any]) -> PixelSpec:
        """Describe an array of the image contract (checked by the caller)."""
        channels = 1 if array.ndim == 2 else int(array.shape[2])
        name = {1: "gray", 2: "gray+alpha", 3: "rgb", 4: "rgba"}[channels]
        return cls(tuple(int(s) for s in array.shape), np.dtype(array.dtype).name, name)

    @classmethod
    def parse(cls, fields: Mapping[str, Any], limits: Limits) -> PixelSpec:
        """Read and check ``shape``, ``dtype`` and ``layout`` (never allocates)."""
        shape = fields.get("shape")
        if (
            not isinstance(shape, list)
            or len(shape) not in (2, 3)
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape)
        ):
            raise _bad(f"shape must be [H, W] or [H, W, C] of ints, got {shape!r:.80}")
        if any(s < 1 for s in shape):
            raise _bad(f"shape {shape} has an empty or negative dimension")
        h, w = shape[0], shape[1]
        if h > limits.max_side or w > limits.max_side or h * w > limits.max_pixels:
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"the image is {w}×{h} pixels, more than the worker's limit "
                f"({limits.max_pixels / 1e6:.0f} megapixels, {limits.max_side} px a side); "
                "scale it down or split it",
            )
        dtype = fields.get("dtype")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise _bad(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r:.40}")
        layout = fields.get("layout")
        if not isinstance(layout, str) or layout not in LAYOUTS:
            raise _bad(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r:.40}")
        channels = shape[2] if len(shape) == 3 else 1
        if LAYOUTS[layout] != channels:
            raise _bad(f"layout {layout!r} does not match the shape {shape}")
        return cls(tuple(shape), dtype, layout)


@dataclass(frozen=True)
class Request:
    """A parsed request header: ``op`` is known, ``id`` valid, version checked."""

    id: int
    op: Op
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EnhanceArgs:
    """The arguments of an ``enhance`` request."""

    spec: PixelSpec
    strength: float | Literal["auto"]
    tile_size: int | None
    brightness: float = 0.0


def parse_request(frames: Sequence[bytes | memoryview], limits: Limits) -> Request:
    """Check a request's frames and header; :class:`ProtocolError` says what is wrong.

    Args:
        frames: the message without the ROUTER's identity frame.
        limits: the worker's limits.
    """
    if not frames:
        raise _bad("the message is empty; send a msgpack header frame")
    header = decode_header(frames[0], limits.max_header_bytes)
    raw_id = header.get("id")
    request_id = (
        raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool)
        and 0 <= raw_id < MAX_ID else None
    )
    raw_op = header.get("op")
    op_name = raw_op if isinstance(raw_op, str) and len(raw_op) <= 64 else None
    version = header.get("v")
    if version != PROTOCOL_VERSION:
        if isinstance(version, int) and not isinstance(version, bool):
            raise ProtocolError(
                ErrorCode.VERSION_MISMATCH, version_message(version, PROTOCOL_VERSION),
                request_id, op_name, worker_protocol=PROTOCOL_VERSION,
            )
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"the header has no protocol version (v = {version!r:.40}); "
            f"set v = {PROTOCOL_VERSION}", request_id, op_name,
        )
    if request_id is None:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"the request id must be an int from 0 to 2**53, got {raw_id!r:.40}",
            None, op_name,
        )
    if op_name is None:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"op must be a string, got {raw_op!r:.40}", request_id
        )
    try:
        op = Op(op_name)
    except ValueError:
        raise ProtocolError(
            ErrorCode.UNKNOWN_OP,
            f"unknown operation {op_name!r}; this worker knows {', '.join(o.value for o in Op)}"
            " (an older worker? update Enhance Low Light)",
            request_id, op_name,
        ) from None
    expected = 2 if op is Op.ENHANCE else 1
    if len(frames) != expected:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"{op} takes {expected} frame{'s' if expected > 1 else ''}, got {len(frames)}",
            request_id, op_name,
        )
    return Request(request_id, op, header)


def parse_enhance(request: Request, limits: Limits) -> EnhanceArgs:
    """The checked arguments of an ``enhance`` request (pixels not looked at)."""
    try:
        spec = PixelSpec.parse(request.fields, limits)
        raw = request.fields.get("strength", 1.0)
        strength: float | Literal["auto"] = "auto"
        if raw != "auto":
            if (
                isinstance(raw, bool) or not isinstance(raw, int | float)
                or not 0.0 <= float(raw) <= 1.0
            ):
                raise _bad(f"strength must be a number in [0, 1] or 'auto', got {raw!r:.40}")
            strength = float(raw)
        raw = request.fields.get("brightness", 0.0)
        if (
            isinstance(raw, bool) or not isinstance(raw, int | float)
            or not -1.0 <= float(raw) <= 1.0
        ):
            raise _bad(f"brightness must be a number from -1 to 1, got {raw!r:.40}")
        brightness = float(raw)
        tile = request.fields.get("tile_size")
        if tile is not None and (
            isinstance(tile, bool) or not isinstance(tile, int)
            or not MIN_TILE_SIZE <= tile <= MAX_TILE_SIZE
        ):
            raise _bad(
                f"tile_size must be null or an int from {MIN_TILE_SIZE} to {MAX_TILE_SIZE}, "
                f"got {tile!r:.40}"
            )
    except ProtocolError as exc:
        exc.request_id, exc.op = request.id, str(request.op)
        raise
    return EnhanceArgs(spec, strength, tile, brightness)


def parse_target(request: Request) -> int:
    """The ``target`` of a ``cancel`` request."""
    target = request.fields.get("target")
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < MAX_ID:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"cancel needs target = the id of a request, got {target!r:.40}",
            request.id, str(request.op),
        )
    return target


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Reply:
    """A parsed reply header."""

    id: int | None
    op: str | None
    event: Event
    fields: Mapping[str, Any]

    @property
    def code(self) -> str:
        """The error code of an ``error`` event ('' otherwise)."""
        code = self.fields.get("code", "")
        return code if isinstance(code, str) else "internal"

    @property
    def message(self) -> str:
        message = self.fields.get("message", "")
        return message if isinstance(message, str) else repr(message)


def parse_reply(header_frame: bytes | memoryview, max_bytes: int = 1 << 20) -> Reply:
    """Read a reply header (the client side); :class:`ProtocolError` when it is not one.

    A reply from a worker of another protocol version raises ``version_mismatch`` with
    the sentence to show, unless it is an error reply (whose shape never changes; the
    worker's message is kept then).
    """
    header = decode_header(header_frame, max_bytes)
    try:
        event = Event(str(header.get("event")))
    except ValueError:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, "the worker sent a reply without a known event; "
            "update Enhance Low Light and restart the worker with `lowlight worker stop`",
        ) from None
    version = header.get("v")
    if version != PROTOCOL_VERSION and event is not Event.ERROR:
        raise ProtocolError(
            ErrorCode.VERSION_MISMATCH, version_message(PROTOCOL_VERSION, version),
        )
    raw_id = header.get("id")
    rid = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
    op = header.get("op")
    return Reply(rid, op if isinstance(op, str) else None, event, header)


# --------------------------------------------------------------------------- pixels


def array_to_frame(array: NDArray[Any]) -> NDArray[Any]:
    """The array as a C-contiguous little-endian buffer for a zero-copy send.

    Returns ``array`` itself when it already is one (no copy).
    """
    target = DTYPES.get(np.dtype(array.dtype).name)
    if target is None:
        raise ValueError(f"dtype {array.dtype} is not one of {sorted(DTYPES)}")
    if array.dtype != target:
        array = array.astype(target)
    return np.ascontiguousarray(array)


def frame_to_array(buffer: memoryview | bytes, spec: PixelSpec) -> NDArray[Any]:
    """A numpy view of a pixel frame (no copy; writable when the buffer is).

    Raises:
        ProtocolError: ``bad_request`` when the frame's length does not match ``spec``.
    """
    nbytes = spec.nbytes
    if len(buffer) != nbytes:
        raise _bad(
            f"the pixel frame has {len(buffer)} bytes but shape {list(spec.shape)} of "
            f"{spec.dtype} needs {nbytes} (truncated pixels?)"
        )
    array: NDArray[Any] = np.frombuffer(buffer, dtype=spec.numpy_dtype).reshape(spec.shape)
    return array


def _bad(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_REQUEST, message)


# --------------------------------------------------------------------------- discovery


class UnsafeDirectoryError(OSError):
    """A runtime folder exists but others could reach it; the message says what to do."""


def runtime_dir(override: str | os.PathLike[str] | None = None, *, create: bool = True) -> Path:
    """The private folder of the socket, endpoint file and lock (see the module docstring).

    Args:
        override: use this folder instead (tests, ``--runtime-dir``).
        create: create it (mode 0700) when missing.

    Raises:
        UnsafeDirectoryError: the folder is not a private directory of this user.
    """
    if override is not None:
        path = Path(override)
    elif sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        path = Path(base) / APP_DIR / "run"
    else:
        xdg = os.environ.get("XDG_RUNTIME_DIR", "")
        if xdg and os.path.isabs(xdg) and os.path.isdir(xdg):
            path = Path(xdg) / APP_DIR
        else:
            tmp = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
            path = Path(tmp) / f"{APP_DIR}-{os.getuid()}"
    if create or path.exists():
        ensure_private_dir(path)
    return path


def state_dir(*, create: bool = True) -> Path:
    """``$XDG_STATE_HOME/enhance-low-light`` (default ``~/.local/state/...``): the log."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        path = Path(base) / APP_DIR / "state"
    else:
        xdg = os.environ.get("XDG_STATE_HOME", "")
        root = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "state"
        path = root / APP_DIR
    if create:
        ensure_private_dir(path)
    return path


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` with mode 0700 (parents as needed) and check that it is private.

    Raises:
        UnsafeDirectoryError: it is a symlink or not a directory, belongs to another
            user, or grants any permission to group or others.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
    if sys.platform == "win32":  # per-user profile folder, protected by its ACL
        return
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeDirectoryError(
            f"{path} should be the worker's private folder but is not a directory; remove it"
        )
    if st.st_uid != os.getuid():
        raise UnsafeDirectoryError(
            f"{path} belongs to another user (uid {st.st_uid}); the worker refuses to use it: "
            "remove it or set XDG_RUNTIME_DIR to a private folder"
        )
    if st.st_mode & 0o077:
        raise UnsafeDirectoryError(
            f"{path} can be reached by other users (mode {stat.S_IMODE(st.st_mode):03o}); "
            f"run `chmod 700 {path}` or remove it"
        )


@dataclass(frozen=True)
class EndpointInfo:
    """Contents of the endpoint file (``worker.json``)."""

    endpoint: str
    pid: int
    transport: str
    protocol: int
    app_version: str
    started: float
    server_public_key: str | None = None
    client_public_key: str | None = None
    client_secret_key: str | None = None

    def public(self) -> dict[str, Any]:
        """The fields safe to print (no secret key)."""
        out = asdict(self)
        out.pop("client_secret_key")
        return out


def write_endpoint_file(path: Path, info: EndpointInfo) -> None:
    """Write ``info`` atomically with mode 0600 (never readable by others, not even briefly)."""
    write_private_file(path, json.dumps(asdict(info), indent=1))


def write_private_file(path: Path, text: str) -> None:
    """Atomically replace ``path`` by ``text`` in a file created with mode 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def read_endpoint_file(path: Path) -> EndpointInfo | None:
    """The endpoint file's contents, or ``None`` when it is missing or unreadable.

    Raises:
        UnsafeDirectoryError: the file is not the user's or others could read it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, encoding="utf-8") as fh:
        if sys.platform != "win32":
            st = os.fstat(fh.fileno())
            if st.st_uid != os.getuid() or st.st_mode & 0o077:
                raise UnsafeDirectoryError(
                    f"{path} is not private to this user (mode "
                    f"{stat.S_IMODE(st.st_mode):03o}, uid {st.st_uid}); remove it"
                )
        try:
            raw = json.loads(fh.read())
            names = set(EndpointInfo.__dataclass_fields__)
            return EndpointInfo(**{k: v for k, v in raw.items() if k in names})
        except (ValueError, TypeError, AttributeError):
            return None


def ipc_endpoint(directory: Path) -> str:
    """The ``ipc://`` endpoint in ``directory``; ``ValueError`` when the path is too long."""
    path = str(directory / SOCKET_FILE)
    if len(path.encode()) > MAX_IPC_PATH:
        raise ValueError(
            f"the socket path {path} is longer than a Unix socket allows ({MAX_IPC_PATH} "
            "bytes); set XDG_RUNTIME_DIR to a shorter folder or use --tcp"
        )
    return f"ipc://{path}"


def hello_info_keys() -> tuple[str, ...]:
    """Keys of ``hello``'s ``info`` map (documentation and tests).

    ``protocol``, ``app_version``, ``pid``, ``endpoint``, ``transport``, ``device``
    (``"cpu"``, ``"cuda:0"``), ``device_name``, ``device_note`` (why not the GPU, or
    ``null``), ``model`` (``name``, ``weights`` path, ``bundled``, ``sha256``,
    ``config``), ``limits``, ``threads``, ``started``, ``uptime_s``, ``queue`` (jobs
    waiting or running), ``idle_timeout_s``.
    """
    return (
        "protocol", "app_version", "pid", "endpoint", "transport", "device", "device_name",
        "device_note", "model", "limits", "threads", "started", "uptime_s", "queue",
        "idle_timeout_s",
    )


class InstanceLock:
    """One worker per user: an exclusive lock on ``worker.lock``, held for the worker's life.

    POSIX: ``flock`` (released by the kernel when the process dies, however it dies).
    Windows: ``msvcrt.locking`` of one byte at :data:`_WIN_LOCK_OFFSET` (the pid is
    written before it, where other processes can still read it). The file holds the
    holder's pid. :meth:`held` probes without keeping the lock; :meth:`acquire` retries
    for a moment so that such a probe can never make a starting worker give up.
    """

    _WIN_LOCK_OFFSET: Final = 4096

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, attempts: int = 20, delay: float = 0.05) -> bool:
        """Take the lock (and write this pid into the file); ``False`` when another holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        for i in range(attempts):
            if _try_lock(fd):
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, f"{os.getpid():<20d}\n".encode())
                self._fd = fd
                return True
            if i + 1 < attempts:
                time.sleep(delay)
        os.close(fd)
        return False

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    @staticmethod
    def held(path: Path) -> bool:
        """Whether some process holds the lock now (a momentary probe)."""
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return False
        try:
            if _try_lock(fd):
                _unlock(fd)
                return False
            return True
        finally:
            os.close(fd)

    @staticmethod
    def holder_pid(path: Path) -> int | None:
        """The pid written by the last holder (meaningful while :meth:`held`)."""
        try:
            with open(path, "rb") as fh:
                text = fh.read(21).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else None
        except OSError:
            return None


def live_endpoint(directory: Path) -> EndpointInfo | None:
    """The endpoint of the worker running for ``directory``, or ``None``.

    Live means: the endpoint file is readable and private, and its pid is the process
    that holds the instance lock right now (a crashed worker's lock is released by the
    kernel, so a stale file is never trusted).
    """
    info = read_endpoint_file(directory / ENDPOINT_FILE)
    if info is None:
        return None
    lock = directory / LOCK_FILE
    if not InstanceLock.held(lock) or InstanceLock.holder_pid(lock) != info.pid:
        return None
    # A new worker takes the lock an instant before it writes its pid over the crashed
    # one's: in that instant the stale file looks live, unless its process is gone.
    if not _process_exists(info.pid):
        return None
    return info


def _process_exists(pid: int) -> bool:
    """Whether ``pid`` is a running process (not a zombie); always ``True`` on Windows."""
    if sys.platform == "win32":
        return True  # os.kill(pid, 0) would terminate it there
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        stat = ""
    if stat:
        return stat.rpartition(")")[2].split()[:1] != ["Z"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, InstanceLock._WIN_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, InstanceLock._WIN_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
