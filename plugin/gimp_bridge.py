"""The GIMP plug-in's bridge to the worker, run with the project's own Python.

GIMP's bundled Python usually has neither numpy nor pyzmq, so the plug-in
(``plugin/gimp/enhance_low_light/enhance_low_light.py``) starts
``<project python> -m plugin.gimp_bridge`` and talks to it over stdin/stdout; this module
then uses :mod:`worker.client` like any other client.

Protocol (version 1; every message is one line of UTF-8 JSON, optionally followed by raw
bytes whose count the line gives in ``nbytes``):

plug-in → bridge (stdin)
    ``{"op": "enhance", "protocol": 1, "width": W, "height": H, "channels": C,
    "strength": S | "auto", "brightness": B, "crop": [x, y, w, h], "start_args": [...],
    "nbytes": W*H*C*4}`` followed by the
    pixels: float32, native byte order, row-major H×W×C (C = 1..4 as in
    :mod:`hybridnet.contract`, sRGB-encoded, alpha straight). ``brightness`` is a number
    in [-1, 1] (0 when absent, as older plug-ins send it; see
    :func:`hybridnet.contract.check_brightness`). ``crop`` is the part of the
    result to send back (the plug-in sends some context around the selection);
    ``start_args`` are the worker's arguments should none run (``--weights``, ``--device``;
    see :class:`worker.client.WorkerClient`).
    ``{"op": "cancel"}`` or closing stdin (the plug-in was cancelled or died) cancels the
    request in flight; ``{"op": "bye"}`` ends the bridge.

bridge → plug-in (stdout)
    ``{"event": "progress", "done": d, "total": t}`` any number of times, then either
    ``{"event": "result", "width": w, "height": h, "channels": C, "nbytes": n}`` followed
    by the cropped float32 pixels, or ``{"event": "error", "code": CODE, "message":
    SENTENCE}`` where CODE is a :class:`worker.client.WorkerError` code, ``"cancelled"``,
    ``"bad_request"`` or ``"internal"``, and SENTENCE tells the user what to do.

The bridge never writes anything else to stdout (stray prints go to stderr).
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import IO, Any

PROTOCOL = 1
MAX_HEADER = 64 * 1024
MAX_PIXELS = 1 << 31  # bytes of one request; a 16k × 16k RGBA float image is 4 GiB


class BridgeError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def read_message(stream: IO[bytes]) -> tuple[dict[str, Any], bytes] | None:
    """One message (header and payload) from ``stream``; None at end of stream."""
    line = stream.readline(MAX_HEADER)
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise BridgeError("bad_request", "the request header is too long or cut off")
    try:
        header = json.loads(line)
    except ValueError as exc:
        raise BridgeError("bad_request", f"the request header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise BridgeError("bad_request", "the request header must be a JSON object")
    nbytes = header.get("nbytes", 0)
    if not isinstance(nbytes, int) or not 0 <= nbytes <= MAX_PIXELS:
        raise BridgeError("bad_request", f"bad payload size {nbytes!r}")
    payload = stream.read(nbytes) if nbytes else b""
    if len(payload) != nbytes:
        return None
    return header, payload


def write_message(stream: IO[bytes], header: dict[str, Any], payload: bytes = b"",
                  lock: threading.Lock | None = None) -> None:
    line = (json.dumps(header, separators=(",", ":")) + "\n").encode("utf-8")
    if lock is None:
        stream.write(line + payload)
        stream.flush()
        return
    with lock:
        stream.write(line)
        if payload:
            stream.write(payload)
        stream.flush()


def _pixels(header: dict[str, Any], payload: bytes) -> tuple[Any, tuple[int, int, int, int]]:
    import numpy as np

    try:
        w, h, c = int(header["width"]), int(header["height"]), int(header["channels"])
        crop = tuple(int(v) for v in header.get("crop", (0, 0, w, h)))
    except (KeyError, TypeError, ValueError):
        raise BridgeError("bad_request", "the request needs width, height and channels") \
            from None
    if header.get("protocol") != PROTOCOL:
        raise BridgeError(
            "version_mismatch",
            "The GIMP plug-in and the installed project are different versions; run "
            "`lowlight install` again and restart GIMP.",
        )
    if w <= 0 or h <= 0 or c not in (1, 2, 3, 4) or len(payload) != w * h * c * 4:
        raise BridgeError("bad_request", f"pixels do not match {w}×{h}×{c} float32")
    if len(crop) != 4:
        raise BridgeError("bad_request", f"crop must be [x, y, w, h], got {crop}")
    x, y, cw, ch = crop
    if not (0 <= x and 0 <= y and cw > 0 and ch > 0 and x + cw <= w and y + ch <= h):
        raise BridgeError("bad_request", f"crop {crop} is outside the {w}×{h} image")
    arr = np.frombuffer(payload, dtype=np.float32).reshape(h, w, c)
    return arr, (x, y, cw, ch)


def _strength(value: Any) -> float | str:
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise BridgeError("bad_request", f"strength must be 0..1 or 'auto', got {value!r}")
    return float(value)


def _brightness(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not -1 <= value <= 1:  # NaN fails the comparison too
        raise BridgeError("bad_request", "brightness must be a number from -1 (darker) to 1 "
                          f"(brighter), 0 to leave it as the model sees it; got {value!r}")
    return float(value)


class _Requests:
    """Reads stdin on a thread so that a cancel (or stdin closing) is seen mid-request."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.queue: queue.Queue[tuple[dict[str, Any], bytes] | BridgeError | None] = \
            queue.Queue()
        self.closed = threading.Event()  # end of input: the plug-in is gone or done
        self.cancelled = threading.Event()  # an explicit {"op": "cancel"}
        self.thread = threading.Thread(target=self._run, name="bridge-stdin", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                message = read_message(self.stream)
            except BridgeError as exc:
                self.closed.set()
                self.queue.put(exc)
                return
            except (OSError, ValueError):
                message = None
            if message is not None and message[0].get("op") == "cancel":
                self.cancelled.set()
                continue
            if message is None or message[0].get("op") == "bye":
                self.closed.set()
                self.queue.put(message)
                return
            self.queue.put(message)

    def is_cancelled(self) -> bool:
        return self.closed.is_set() or self.cancelled.is_set()

    def next(self) -> tuple[dict[str, Any], bytes] | None:
        item = self.queue.get()
        if isinstance(item, BridgeError):
            raise item
        self.cancelled.clear()
        return item


ClientFactory = Callable[[Sequence[str]], Any]


def _default_client(start_args: Sequence[str]) -> Any:
    from worker.client import WorkerClient

    return WorkerClient(autostart=True, start_args=start_args)


def _start_args(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise BridgeError("bad_request", "start_args must be a list of strings")
    return list(value)


def serve(stdin: IO[bytes], stdout: IO[bytes], client_factory: ClientFactory | None = None
          ) -> int:
    """Answer requests until ``bye`` or end of input; returns the exit status."""
    lock = threading.Lock()

    def send(header: dict[str, Any], payload: bytes = b"") -> None:
        write_message(stdout, header, payload, lock)

    try:
        from worker.client import Cancelled, WorkerError
    except ImportError as exc:
        send({"event": "error", "code": "start_failed", "message": (
            f"The enhancer's Python cannot load its worker client ({exc}); run "
            "`lowlight install` again from an up-to-date installation and restart GIMP.")})
        return 1
    requests = _Requests(stdin)
    client = None
    status = 0
    try:
        while True:
            try:
                message = requests.next()
            except BridgeError as exc:
                send({"event": "error", "code": exc.code, "message": str(exc)})
                return 1
            if message is None or message[0].get("op") == "bye":
                return status
            header, payload = message
            try:
                if header.get("op", "enhance") != "enhance":
                    raise BridgeError("bad_request", f"unknown op {header.get('op')!r}")
                image, (x, y, cw, ch) = _pixels(header, payload)
                strength = _strength(header.get("strength", 1.0))
                brightness = _brightness(header.get("brightness", 0.0))
                if client is None:
                    client = (client_factory or _default_client)(
                        _start_args(header.get("start_args")))

                def progress(done: int, total: int) -> None:
                    send({"event": "progress", "done": int(done), "total": int(total)})

                result = client.enhance(image, strength, progress=progress,
                                        cancel=requests.is_cancelled, brightness=brightness)
                import numpy as np

                out = np.ascontiguousarray(result[y:y + ch, x:x + cw], dtype=np.float32)
                send({"event": "result", "width": cw, "height": ch,
                      "channels": int(header["channels"]), "nbytes": out.nbytes},
                     out.tobytes())
            except Cancelled:
                send({"event": "error", "code": "cancelled", "message": "Cancelled."})
                status = 3
            except WorkerError as exc:
                send({"event": "error", "code": str(getattr(exc, "code", "internal")),
                      "message": str(exc)})
                status = 1
            except BridgeError as exc:
                send({"event": "error", "code": exc.code, "message": str(exc)})
                status = 1
            except Exception as exc:  # reported to the user, not swallowed
                traceback.print_exc(file=sys.stderr)
                send({"event": "error", "code": "internal", "message": (
                    f"The enhancer's bridge failed ({type(exc).__name__}: {exc}); please "
                    "report this with GIMP's error console text.")})
                status = 1
    finally:
        if client is not None:
            try:
                client.close()
            except Exception:  # closing is best effort
                pass


def main() -> int:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but protocol messages may reach the plug-in's pipe
    try:
        return serve(stdin, stdout)
    except BrokenPipeError:
        return 3


if __name__ == "__main__":
    sys.exit(main())
