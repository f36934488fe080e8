"""The worker's wire protocol and discovery helpers, without a worker (fast)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import msgpack
import numpy as np
import pytest

from worker.protocol import (
    ENDPOINT_FILE,
    LOCK_FILE,
    PROTOCOL_VERSION,
    EndpointInfo,
    ErrorCode,
    Event,
    InstanceLock,
    Limits,
    Op,
    PixelSpec,
    ProtocolError,
    UnsafeDirectoryError,
    array_to_frame,
    encode_header,
    ensure_private_dir,
    frame_to_array,
    ipc_endpoint,
    live_endpoint,
    parse_enhance,
    parse_reply,
    parse_request,
    read_endpoint_file,
    reply_header,
    request_header,
    runtime_dir,
    version_message,
    write_endpoint_file,
)

LIMITS = Limits()


def _enhance_frames(array: np.ndarray, **fields: object) -> list[bytes]:
    spec = PixelSpec.of(array)
    header = request_header(Op.ENHANCE, 7, **spec.to_fields(), strength=1.0, **fields)
    return [encode_header(header), array_to_frame(array).tobytes()]


class TestMessages:
    @pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
    @pytest.mark.parametrize("shape", [(5, 6), (5, 6, 1), (5, 6, 2), (5, 6, 3), (5, 6, 4)])
    def test_pixels_round_trip(self, dtype: type, shape: tuple[int, ...]) -> None:
        array = (np.arange(np.prod(shape)) % 200).astype(dtype).reshape(shape)
        frames = _enhance_frames(array)
        request = parse_request(frames, LIMITS)
        args = parse_enhance(request, LIMITS)
        back = frame_to_array(memoryview(frames[1]), args.spec)
        assert back.dtype == array.dtype and np.array_equal(back, array)

    def test_big_endian_and_strided_arrays_are_made_little_endian_contiguous(self) -> None:
        array = np.arange(24, dtype=">u2").reshape(4, 6)[:, ::2]
        frame = array_to_frame(array)
        assert frame.flags.c_contiguous and frame.dtype == np.dtype("<u2")
        assert np.array_equal(frame, array)
        same = np.zeros((3, 3), np.uint8)
        assert array_to_frame(same) is same  # no copy when not needed

    @pytest.mark.parametrize(
        ("change", "code"),
        [
            ({"v": PROTOCOL_VERSION + 1}, ErrorCode.VERSION_MISMATCH),
            ({"v": "1"}, ErrorCode.BAD_REQUEST),
            ({"id": -1}, ErrorCode.BAD_REQUEST),
            ({"id": 2**60}, ErrorCode.BAD_REQUEST),
            ({"op": "frobnicate"}, ErrorCode.UNKNOWN_OP),
            ({"op": 3}, ErrorCode.BAD_REQUEST),
            ({"shape": [5, 6, 5]}, ErrorCode.BAD_REQUEST),
            ({"shape": [5, 0, 3]}, ErrorCode.BAD_REQUEST),
            ({"shape": [5, True, 3]}, ErrorCode.BAD_REQUEST),
            ({"shape": [100000, 100000, 3]}, ErrorCode.TOO_LARGE),
            ({"shape": "5x6"}, ErrorCode.BAD_REQUEST),
            ({"dtype": "float64"}, ErrorCode.BAD_REQUEST),
            ({"layout": "rgba"}, ErrorCode.BAD_REQUEST),
            ({"strength": 1.5}, ErrorCode.BAD_REQUEST),
            ({"strength": "high"}, ErrorCode.BAD_REQUEST),
            ({"strength": True}, ErrorCode.BAD_REQUEST),
            ({"brightness": 1.5}, ErrorCode.BAD_REQUEST),
            ({"brightness": -2}, ErrorCode.BAD_REQUEST),
            ({"brightness": "up"}, ErrorCode.BAD_REQUEST),
            ({"brightness": False}, ErrorCode.BAD_REQUEST),
            ({"brightness": float("nan")}, ErrorCode.BAD_REQUEST),
            ({"tile_size": 8}, ErrorCode.BAD_REQUEST),
        ],
    )
    def test_bad_headers_name_the_problem(self, change: dict[str, object],
                                          code: ErrorCode) -> None:
        array = np.zeros((5, 6, 3), np.uint8)
        spec = PixelSpec.of(array)
        header = {**request_header(Op.ENHANCE, 7, **spec.to_fields()), **change}
        frames = [encode_header(header), array.tobytes()]
        with pytest.raises(ProtocolError) as exc:
            parse_enhance(parse_request(frames, LIMITS), LIMITS)
        assert exc.value.code is code
        assert len(str(exc.value)) > 20
        if "id" not in change:
            assert exc.value.request_id == 7

    def test_version_mismatch_says_update(self) -> None:
        header = {**request_header(Op.HELLO, 1), "v": PROTOCOL_VERSION + 1}
        with pytest.raises(ProtocolError) as exc:
            parse_request([encode_header(header)], LIMITS)
        assert exc.value.code is ErrorCode.VERSION_MISMATCH
        assert "update Enhance Low Light" in str(exc.value)
        assert exc.value.extra == {"worker_protocol": PROTOCOL_VERSION}
        message = version_message(1, 2)
        assert "protocol 1 but the worker speaks 2" in message and "client is older" in message
        # a reply from a worker of another version is refused by the client side
        future = {**reply_header(1, "hello", Event.REPLY), "v": PROTOCOL_VERSION + 1}
        with pytest.raises(ProtocolError) as exc:
            parse_reply(encode_header(future))
        assert exc.value.code is ErrorCode.VERSION_MISMATCH

    @pytest.mark.parametrize(
        "frames",
        [[b""], [b"\xc1"], [msgpack.packb([1, 2])], [msgpack.packb({1: 2})],
         [b"\x00" * (LIMITS.max_header_bytes + 1)],
         [encode_header(request_header(Op.PING, 1)), b"extra"],
         [encode_header(request_header(Op.ENHANCE, 1))]],
    )
    def test_garbage_is_a_protocol_error(self, frames: list[bytes]) -> None:
        with pytest.raises(ProtocolError):
            parse_request(frames, LIMITS)

    def test_truncated_pixels(self) -> None:
        frames = _enhance_frames(np.zeros((5, 6, 3), np.uint16))
        args = parse_enhance(parse_request(frames, LIMITS), LIMITS)
        with pytest.raises(ProtocolError, match="truncated"):
            frame_to_array(memoryview(frames[1])[:-1], args.spec)

    def test_brightness_defaults_to_zero_and_is_read(self) -> None:
        array = np.zeros((5, 6, 3), np.uint8)
        plain = parse_enhance(parse_request(_enhance_frames(array), LIMITS), LIMITS)
        assert plain.brightness == 0.0
        for value in (-1, 0.25, 1.0):
            frames = _enhance_frames(array, brightness=value)
            args = parse_enhance(parse_request(frames, LIMITS), LIMITS)
            assert args.brightness == value and isinstance(args.brightness, float)

    def test_limits_round_trip(self) -> None:
        limits = Limits(max_pixels=1000)
        assert Limits.from_dict(limits.to_dict()) == limits
        assert limits.to_dict()["max_message_bytes"] == max(16000, limits.max_header_bytes)


class TestDiscovery:
    def test_runtime_dir_is_created_private(self, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
        folder = runtime_dir()
        assert folder == tmp_path / "enhance-low-light"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700

    def test_fallback_is_a_private_temp_folder(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
        assert runtime_dir(create=False) == Path(f"/tmp/enhance-low-light-{os.getuid()}")

    def test_unsafe_folders_are_refused(self, tmp_path: Path) -> None:
        open_dir = tmp_path / "open"
        open_dir.mkdir(mode=0o755)
        os.chmod(open_dir, 0o755)
        with pytest.raises(UnsafeDirectoryError, match="chmod 700"):
            ensure_private_dir(open_dir)
        link = tmp_path / "link"
        link.symlink_to(open_dir)
        with pytest.raises(UnsafeDirectoryError):
            ensure_private_dir(link)
        if os.getuid() == 0:  # a folder planted by another user
            other = tmp_path / "other"
            other.mkdir(mode=0o700)
            os.chown(other, 65534, 65534)
            with pytest.raises(UnsafeDirectoryError, match="another user"):
                ensure_private_dir(other)

    def test_endpoint_file_is_0600_and_checked(self, tmp_path: Path) -> None:
        info = EndpointInfo("ipc:///x", 42, "ipc", PROTOCOL_VERSION, "0", 1.0)
        path = tmp_path / "worker.json"
        write_endpoint_file(path, info)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert read_endpoint_file(path) == info
        os.chmod(path, 0o644)
        with pytest.raises(UnsafeDirectoryError):
            read_endpoint_file(path)
        assert read_endpoint_file(tmp_path / "missing.json") is None

    def test_socket_path_length_is_checked(self, tmp_path: Path) -> None:
        assert ipc_endpoint(tmp_path).startswith("ipc://")
        with pytest.raises(ValueError, match="shorter"):
            ipc_endpoint(tmp_path / ("x" * 120))

    def test_crashed_workers_endpoint_is_not_live_while_a_new_one_takes_the_lock(
        self, tmp_path: Path
    ) -> None:
        # A crashed worker left its endpoint file and its pid in the lock file; a new
        # worker has just taken the lock and not yet written its own pid.
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        write_endpoint_file(tmp_path / ENDPOINT_FILE,
                            EndpointInfo("ipc:///x", dead.pid, "ipc", PROTOCOL_VERSION, "0", 1.0))
        lock = InstanceLock(tmp_path / LOCK_FILE)
        assert lock.acquire()
        try:
            (tmp_path / LOCK_FILE).write_text(f"{dead.pid:<20d}\n")
            assert InstanceLock.holder_pid(tmp_path / LOCK_FILE) == dead.pid
            assert live_endpoint(tmp_path) is None
            (tmp_path / LOCK_FILE).write_text(f"{os.getpid():<20d}\n")
            write_endpoint_file(tmp_path / ENDPOINT_FILE, EndpointInfo(
                "ipc:///x", os.getpid(), "ipc", PROTOCOL_VERSION, "0", 1.0))
            assert live_endpoint(tmp_path) is not None  # the new worker, once written
        finally:
            lock.release()

    def test_lock_is_exclusive_and_probed(self, tmp_path: Path) -> None:
        path = tmp_path / "worker.lock"
        first, second = InstanceLock(path), InstanceLock(path)
        assert not InstanceLock.held(path)
        assert first.acquire()
        assert InstanceLock.held(path) and InstanceLock.holder_pid(path) == os.getpid()
        assert not second.acquire(attempts=2, delay=0.01)
        first.release()
        assert not InstanceLock.held(path)
        assert second.acquire(attempts=1)
        second.release()


class TestRateLimitedLog:
    """Repeated warnings (a flood of dropped replies) are written once per interval."""

    def test_once_per_interval_with_the_count(self, caplog: pytest.LogCaptureFixture) -> None:
        import logging

        from worker.server import RateLimitedLog

        now = [0.0]
        limited = RateLimitedLog(logging.getLogger("test.flood"), 10.0, clock=lambda: now[0])
        with caplog.at_level(logging.WARNING, logger="test.flood"):
            for _ in range(30_000):
                limited.warning("dropped one")
            limited.warning("something else")
            now[0] = 11.0
            limited.warning("dropped one")
        lines = [r.getMessage() for r in caplog.records]
        assert lines == ["dropped one", "something else",
                         "dropped one (and 29999 more like it in the last 11 s)"]
