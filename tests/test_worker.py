"""The background worker end to end: real worker processes over real sockets.

Every worker here is a real ``python -m worker run`` process with a tiny model, started
by the CLI or a client's autostart, in a private runtime/state folder of its own, so the
real user's worker is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import torch
import zmq
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hybridnet import Enhancer, HybridNet, HybridNetConfig, save_model
from worker.client import Cancelled, WorkerClient, WorkerError, worker_status
from worker.protocol import (
    ENDPOINT_FILE,
    LOCK_FILE,
    LOG_FILE,
    PROTOCOL_VERSION,
    SOCKET_FILE,
    EndpointInfo,
    InstanceLock,
    Op,
    PixelSpec,
    encode_header,
    hello_info_keys,
    read_endpoint_file,
    request_header,
)

ROOT = Path(__file__).resolve().parents[1]
# One thread in the workers and in the in-process reference: the same thread count keeps
# them bit-identical, and on a busy 2-core machine tiny images run ~10x faster on one.
TINY_ARGS = ("--device", "cpu", "--threads", "1")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@dataclass
class Env:
    """A private XDG_RUNTIME_DIR/XDG_STATE_HOME pair and a tiny weights file."""

    root: Path
    weights: Path

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def folder(self) -> Path:
        return self.run / "enhance-low-light"

    @property
    def log(self) -> Path:
        return self.root / "state" / "enhance-low-light" / LOG_FILE

    def environ(self) -> dict[str, str]:
        return {**os.environ, "XDG_RUNTIME_DIR": str(self.run),
                "XDG_STATE_HOME": str(self.root / "state")}

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # ``python -m worker ...`` is ``lowlight worker ...`` (see test_registered...)
        out = subprocess.run([sys.executable, "-m", "worker", *args],
                             env=self.environ(), capture_output=True, text=True, timeout=240,
                             cwd=ROOT)
        if check:
            assert out.returncode == 0, out.stdout + out.stderr
        return out

    def endpoint(self) -> EndpointInfo | None:
        return read_endpoint_file(self.folder / ENDPOINT_FILE)

    def pid(self) -> int:
        info = self.endpoint()
        assert info is not None
        return info.pid

    def start_args(self) -> list[str]:
        return ["--weights", str(self.weights), *TINY_ARGS]

    def kill_all(self) -> None:
        lock = self.folder / LOCK_FILE
        pid = InstanceLock.holder_pid(lock)
        if InstanceLock.held(lock) and pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def private_env(weights: Path) -> Iterator[Env]:
    """A fresh short folder (socket paths are limited to 107 bytes) set in os.environ."""
    root = Path(tempfile.mkdtemp(prefix="ellw-", dir="/tmp"))
    (root / "run").mkdir(mode=0o700)
    env = Env(root, weights)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_RUNTIME_DIR", str(env.run))
        mp.setenv("XDG_STATE_HOME", str(root / "state"))
        try:
            yield env
        finally:
            with contextlib.suppress(Exception):
                env.cli("stop", check=False)
            env.kill_all()
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_model(HybridNet(HybridNetConfig.tiny()),
                      tmp_path_factory.mktemp("w") / "tiny.safetensors")


@pytest.fixture(scope="module")
def reference(weights: Path) -> Enhancer:
    return Enhancer(weights, device="cpu")


@pytest.fixture(scope="module")
def env(weights: Path) -> Iterator[Env]:
    """One worker for the module, started with ``lowlight worker start``."""
    with private_env(weights) as e:
        out = e.cli("start", *e.start_args(), "--idle-timeout", "600")
        assert "worker started" in out.stdout
        yield e
        pid = e.pid()
        assert "worker stopped" in e.cli("stop").stdout
        assert not InstanceLock.held(e.folder / LOCK_FILE)
        assert not (e.folder / ENDPOINT_FILE).exists() and not (e.folder / SOCKET_FILE).exists()
        with pytest.raises(OSError):  # the process is gone (reaped: it is not our child)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.05)


@pytest.fixture
def client(env: Env) -> Iterator[WorkerClient]:
    with WorkerClient(autostart=False, runtime_dir=env.folder) as c:
        yield c


def _image(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.random(shape, dtype=np.float64) * 0.3
    if dtype is np.float32:
        return values.astype(np.float32)
    return np.round(values * np.iinfo(dtype).max).astype(dtype)


LAYOUT_SHAPES = {"gray": (37, 50), "gray1": (37, 50, 1), "gray+alpha": (37, 50, 2),
                 "rgb": (37, 50, 3), "rgba": (37, 50, 4)}


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("layout", list(LAYOUT_SHAPES))
def test_round_trip_is_bit_exact_to_in_process(
    client: WorkerClient, reference: Enhancer, dtype: type, layout: str
) -> None:
    image = _image(LAYOUT_SHAPES[layout], dtype)
    out = client.enhance(image, 1.0)
    expected = reference.enhance(image, 1.0)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert np.array_equal(out, expected)
    assert out.flags.writeable  # a normal array for the caller
    out[0, 0] = 0


@pytest.mark.parametrize("strength", [0.0, 0.35, "auto"])
def test_strengths_and_odd_arrays(client: WorkerClient, reference: Enhancer,
                                  strength: float | str) -> None:
    image = _image((61, 83, 4), np.uint16, seed=3)
    assert np.array_equal(client.enhance(image, strength),  # type: ignore[arg-type]
                          reference.enhance(image, strength))  # type: ignore[arg-type]
    strided = _image((80, 90, 3), np.uint8, seed=4)[::2, 1::2]
    assert np.array_equal(client.enhance(strided), reference.enhance(strided))


def test_brightness_reaches_the_enhancer(client: WorkerClient, reference: Enhancer) -> None:
    image = _image((61, 83, 3), np.uint8, seed=5)
    plain = client.enhance(image)
    for b in (1.0, -0.6):
        out = client.enhance(image, 0.9, brightness=b)
        assert np.array_equal(out, reference.enhance(image, 0.9, brightness=b))
        assert not np.array_equal(out, plain)
    with pytest.raises(WorkerError, match="brightness must be") as exc:
        client.enhance(image, brightness=1.5)
    assert exc.value.code == "bad_request"


def test_tiled_round_trip(client: WorkerClient, reference: Enhancer) -> None:
    image = _image((150, 170, 4), np.uint16, seed=6)  # 2×2 tiles of 136: blending too
    assert np.array_equal(client.enhance(image, 0.8, tile_size=136),
                          reference.enhance(image, 0.8, tile_size=136))


def test_hello_ping_progress_and_errors(client: WorkerClient, env: Env) -> None:
    info = client.hello()
    assert set(hello_info_keys()) <= set(info)
    assert info["pid"] == env.pid() and info["device"] == "cpu"
    assert info["device_note"] and "--device cpu" in info["device_note"]
    assert info["model"]["weights"] == str(env.weights.resolve())
    assert info["model"]["config"]["content_channels"] == [4, 8, 8]
    assert 0 < client.ping() < 5
    seen: list[tuple[int, int]] = []
    client.enhance(_image((300, 260, 3), np.uint8), progress=lambda d, t: seen.append((d, t)),
                   tile_size=136)
    assert seen[-1][0] == seen[-1][1] > 1 and seen == sorted(seen)
    assert client.notices == [] and client.last_compute_s is not None
    with pytest.raises(WorkerError) as exc:
        client.enhance(np.zeros((4, 4, 5), np.uint8))
    assert exc.value.code == "bad_request" and "channels" in str(exc.value)
    with pytest.raises(WorkerError) as exc:
        client.enhance(np.full((4, 4), np.nan, np.float32))
    assert exc.value.code == "bad_request"


def test_cli_status_log_and_second_start(env: Env, weights: Path, tmp_path: Path) -> None:
    import json

    status = json.loads(env.cli("status", "--json").stdout)
    assert status["endpoint"] == f"ipc://{env.folder / SOCKET_FILE}"
    assert status["pid"] == env.pid() and status["running"] is True
    assert "client_secret_key" not in status
    text = env.cli("status").stdout
    for word in ("endpoint", "pid", "device", "model", "uptime", str(env.pid())):
        assert word in text
    assert worker_status(env.folder) is not None
    log = env.cli("log", "-n", "3").stdout.splitlines()
    assert 1 <= len(log) <= 3 and "worker" in log[-1]
    # a second start reuses the first, and says when it differs from what was asked
    again = env.cli("start", *env.start_args())
    assert "already running" in again.stdout and str(env.pid()) in again.stdout
    assert env.pid() == status["pid"]
    torch.manual_seed(1)
    other = save_model(HybridNet(HybridNetConfig.tiny()), tmp_path / "other.safetensors")
    assert "other weights" in env.cli("start", "--weights", str(other), *TINY_ARGS).stdout


def test_module_level_enhance_reuses_one_connection(env: Env, reference: Enhancer) -> None:
    from worker import client as client_module

    image = _image((30, 40, 3), np.uint8, seed=13)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_RUNTIME_DIR", str(env.run))
        try:
            assert np.array_equal(client_module.enhance(image), reference.enhance(image))
            shared = client_module.shared_client()
            sock = shared._sock
            assert np.array_equal(client_module.enhance(image, 0.5),
                                  reference.enhance(image, 0.5))
            assert shared._sock is sock is not None
        finally:
            client_module.shared_client().close()


def test_hung_worker_times_out_with_a_clear_message(env: Env, client: WorkerClient) -> None:
    client.timeout = 1.0
    client.ping()
    os.kill(env.pid(), signal.SIGSTOP)
    try:
        start = time.monotonic()
        with pytest.raises(WorkerError) as exc:
            client.ping()
        assert exc.value.code == "timeout" and "lowlight worker stop" in str(exc.value)
        assert time.monotonic() - start < 10
    finally:
        os.kill(env.pid(), signal.SIGCONT)
    client.timeout = 30.0
    assert client.ping() < 5  # the Lazy Pirate reconnects


# --------------------------------------------------------------------------- concurrency


def test_four_clients_fifty_requests_each(env: Env, reference: Enhancer) -> None:
    inputs = {(c, i): _image((12 + i % 9, 14 + c, 3), np.uint8, seed=100 * c + i)
              for c in range(4) for i in range(50)}
    expected = {key: reference.enhance(img) for key, img in inputs.items()}
    results: dict[tuple[int, int], np.ndarray] = {}
    errors: list[BaseException] = []

    def run(c: int) -> None:
        try:
            with WorkerClient(autostart=False, runtime_dir=env.folder) as cl:
                for i in range(50):
                    results[(c, i)] = cl.enhance(inputs[(c, i)])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not errors, errors
    assert len(results) == 200
    for key, out in results.items():
        assert np.array_equal(out, expected[key]), key


# --------------------------------------------------------------------------- failures


def test_cancel_mid_job(client: WorkerClient, reference: Enhancer) -> None:
    image = _image((1400, 1400, 3), np.float32)
    cancel = threading.Event()
    seen: list[int] = []
    at: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done >= 2 and not cancel.is_set():
            at.append(done)
            cancel.set()

    start = time.monotonic()
    with pytest.raises(Cancelled):
        client.enhance(image, progress=progress, cancel=cancel, tile_size=256)
    assert time.monotonic() - start < 60
    # the tile running when the cancel arrived may finish; no further tile starts
    # (+1 more for a progress event already on its way when the cancel was sent)
    assert max(seen) <= at[0] + 2, seen
    small = _image((20, 30, 3), np.uint8)
    assert np.array_equal(client.enhance(small), reference.enhance(small))


_LONG_CLIENT = """
import sys, numpy as np
from pathlib import Path
from worker.client import WorkerClient
c = WorkerClient(autostart=False, runtime_dir=Path(sys.argv[1]))
def progress(done, total):
    print("tile", done, total, flush=True)
c.enhance(np.zeros((2000, 2000, 3), np.float32), progress=progress, tile_size=256)
"""


def test_client_killed_mid_request(env: Env, client: WorkerClient, reference: Enhancer) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _LONG_CLIENT, str(env.folder)],
                            stdout=subprocess.PIPE, text=True, env=env.environ())
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the job runs
    assert line.startswith("tile"), line
    total = int(line.split()[2])
    proc.kill()
    proc.wait()
    start = time.monotonic()
    small = _image((20, 30, 3), np.uint8, seed=9)
    assert np.array_equal(client.enhance(small), reference.enhance(small))
    waited = time.monotonic() - start
    log = env.log.read_text()
    assert "client left; cancelling" in log
    assert env.pid() == client.hello()["pid"]  # same worker, still serving
    assert waited < 30 and total > 20


def test_worker_killed_mid_request_then_restarted(weights: Path, reference: Enhancer) -> None:
    with private_env(weights) as env:
        client = WorkerClient(start_args=env.start_args())  # autostart
        first = client.hello()["pid"]
        failure: list[WorkerError] = []
        started = threading.Event()

        def run() -> None:
            try:
                client.enhance(_image((2000, 2000, 3), np.float32), tile_size=256,
                               progress=lambda d, t: started.set())
            except WorkerError as exc:
                failure.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        assert started.wait(60)
        os.kill(first, signal.SIGKILL)
        killed_at = time.monotonic()
        thread.join(30)
        assert failure and failure[0].code == "worker_died"
        assert time.monotonic() - killed_at < 5  # noticed at once, not after a timeout
        assert "stopped" in str(failure[0]) and "starts a new one" in str(failure[0])
        # two clients at once after the crash: both start "the" worker, one runs
        pids: list[int] = []
        others = [WorkerClient(start_args=env.start_args()) for _ in range(2)]
        threads = [threading.Thread(target=lambda c=c: pids.append(c.hello()["pid"]))
                   for c in others]
        for t in threads:
            t.start()
        small = _image((20, 30, 3), np.uint8, seed=11)
        assert np.array_equal(client.enhance(small), reference.enhance(small))
        for t in threads:
            t.join(120)
        second = client.hello()["pid"]
        assert second != first and pids == [second, second]
        for c in (client, *others):
            c.close()


def test_permissions_keep_other_users_out(env: Env) -> None:
    state = env.log.parent
    assert stat.S_IMODE(env.folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for path in (env.folder / ENDPOINT_FILE, env.folder / LOCK_FILE, env.log):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((env.folder / SOCKET_FILE).stat().st_mode) & 0o077 == 0
    if os.getuid() != 0:
        pytest.skip("not root: cannot act as another user; the mode bits were checked")
    # Let others traverse the parents, so that only our folder's own mode protects it.
    os.chmod(env.root, 0o711)
    os.chmod(env.run, 0o711)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become "nobody" and try to reach the worker
        results = []
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.stat(env.run)  # control: the parent folder is reachable
            results.append("control-ok")
            for probe in (lambda: os.listdir(env.folder),
                          lambda: os.stat(env.folder / ENDPOINT_FILE),
                          lambda: open(env.folder / ENDPOINT_FILE).read(),
                          lambda: _unix_connect(env.folder / SOCKET_FILE),
                          lambda: open(env.log).read()):
                try:
                    probe()
                    results.append("allowed")
                except PermissionError:
                    results.append("denied")
        except BaseException as exc:
            results.append(f"error {exc!r}")
        os.write(write_fd, ",".join(results).encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        report = fh.read()
    os.waitpid(pid, 0)
    os.chmod(env.root, 0o700)
    assert report == "control-ok," + ",".join(["denied"] * 5), report


def _unix_connect(path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(path))


def test_idle_worker_exits(weights: Path) -> None:
    with private_env(weights) as env:
        env.cli("start", *env.start_args(), "--idle-timeout", "1")
        lock = env.folder / LOCK_FILE
        deadline = time.monotonic() + 30
        while InstanceLock.held(lock) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not InstanceLock.held(lock)
        assert not (env.folder / ENDPOINT_FILE).exists()
        assert "idle for 1 s" in env.log.read_text()


def test_weights_that_cannot_load_are_reported(weights: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    with private_env(weights) as env:
        out = env.cli("start", "--weights", str(bad), *TINY_ARGS, check=False)
        assert out.returncode == 1
        assert "could not be started" in out.stderr and "bad.safetensors" in out.stderr
        with pytest.raises(WorkerError) as exc:
            WorkerClient(start_args=["--weights", str(bad), *TINY_ARGS]).hello()
        assert exc.value.code == "no_model"
        with pytest.raises(WorkerError) as exc:
            WorkerClient(autostart=False).ping()
        assert exc.value.code == "not_running" and "lowlight worker start" in str(exc.value)


def test_tcp_needs_the_curve_keys(weights: Path, reference: Enhancer) -> None:
    with private_env(weights) as env:
        env.cli("start", *env.start_args(), "--tcp")
        info = env.endpoint()
        assert info is not None and info.transport == "tcp"
        assert info.endpoint.startswith("tcp://127.0.0.1:")
        assert info.server_public_key and info.client_secret_key
        assert stat.S_IMODE((env.folder / ENDPOINT_FILE).stat().st_mode) == 0o600
        with WorkerClient(autostart=False) as c:
            image = _image((40, 50, 3), np.uint16, seed=2)
            assert np.array_equal(c.enhance(image), reference.enhance(image))
        ctx = zmq.Context()
        try:
            plain = ctx.socket(zmq.DEALER)
            intruder = ctx.socket(zmq.DEALER)
            public, secret = zmq.curve_keypair()
            intruder.curve_serverkey = info.server_public_key.encode()
            intruder.curve_publickey, intruder.curve_secretkey = public, secret
            for s in (plain, intruder):
                s.linger = 0
                s.connect(info.endpoint)
                s.send(encode_header(request_header(Op.PING, 1)))
            assert not plain.poll(1500) and not intruder.poll(500)
        finally:
            ctx.destroy(linger=0)


# --------------------------------------------------------------------------- fuzz


@dataclass
class Raw:
    """A bare DEALER on a worker, for messages no client library would send."""

    sock: zmq.Socket[Any]

    def ask(self, frames: list[bytes]) -> dict[str, Any] | None:
        """Send ``frames``; the final reply's header (None: no reply in time)."""
        self.sock.send_multipart(frames)
        while self.sock.poll(10_000):
            reply = msgpack.unpackb(self.sock.recv_multipart()[0], raw=False)
            if reply["event"] in ("reply", "result", "error"):
                assert isinstance(reply, dict)
                return reply
        return None


@pytest.fixture(scope="module")
def fuzz(weights: Path) -> Iterator[tuple[Env, Raw]]:
    with private_env(weights) as env:
        env.cli("start", *env.start_args(), "--max-pixels", "65536")
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        info = env.endpoint()
        assert info is not None
        sock.connect(info.endpoint)
        try:
            yield env, Raw(sock)
        finally:
            ctx.destroy(linger=0)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                     st.floats(allow_nan=True), st.text(max_size=20), st.binary(max_size=20))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
_FIELDS = {
    "v": st.one_of(st.just(1), st.just(2), _SCALARS),
    "id": st.one_of(st.integers(0, 2**53), _SCALARS),
    "op": st.one_of(st.sampled_from(["enhance", "hello", "ping", "cancel", "frobnicate"]),
                    _SCALARS),
    "shape": st.one_of(st.lists(st.integers(-2, 70_000), min_size=0, max_size=4), _SCALARS),
    "dtype": st.one_of(st.sampled_from(["uint8", "uint16", "float32", "float64"]), _SCALARS),
    "layout": st.one_of(st.sampled_from(["gray", "gray+alpha", "rgb", "rgba", "cmyk"]),
                        _SCALARS),
    "strength": st.one_of(st.floats(-1, 2), st.just("auto"), _SCALARS),
    "brightness": st.one_of(st.floats(-2, 2), _SCALARS),
    "tile_size": st.one_of(st.none(), st.integers(-10, 100_000), _SCALARS),
    "target": st.one_of(st.integers(-5, 2**64 - 1), _SCALARS),
}
_HEADERS = st.fixed_dictionaries({}, optional=_FIELDS)
_MESSAGES = st.one_of(
    # raw garbage frames
    st.lists(st.binary(max_size=300), min_size=1, max_size=4),
    # any msgpack value as the header, maybe with pixels
    st.tuples(_VALUES, st.lists(st.binary(max_size=300), max_size=2)).map(
        lambda t: [msgpack.packb(t[0]), *t[1]]),
    # plausible headers with wrong fields, and pixel frames of any (often wrong) length
    st.tuples(_HEADERS, st.lists(st.binary(max_size=2000), max_size=2)).map(
        lambda t: [msgpack.packb(t[0]), *t[1]]),
)


def _is_shutdown(frames: list[bytes]) -> bool:
    try:
        header = msgpack.unpackb(frames[0], raw=False, strict_map_key=False)
    except Exception:
        return False
    return isinstance(header, dict) and header.get("op") == "shutdown"


# No shrinking and one bug only: a worker that stopped answering costs 10 s per example,
# so the run must end at the first failure, not retry thousands of variations of it.
@settings(max_examples=2500, deadline=None, derandomize=True, report_multiple_bugs=False,
          phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(frames=_MESSAGES)
def test_fuzz_every_message_gets_an_answer(fuzz: tuple[Env, Raw], frames: list[bytes]) -> None:
    _env, raw = fuzz
    if _is_shutdown(frames):
        return
    reply = raw.ask(frames)
    assert reply is not None, frames
    assert reply["v"] == PROTOCOL_VERSION and reply["event"] in ("error", "reply", "result")
    if reply["event"] == "error":
        assert reply["code"] in ("bad_request", "unknown_op", "version_mismatch", "too_large",
                                 "busy") and len(reply["message"]) > 10


def test_busy_when_one_client_floods(fuzz: tuple[Env, Raw]) -> None:
    _env, raw = fuzz
    spec = PixelSpec((256, 256, 3), "float32", "rgb")
    pixels = np.zeros((256, 256, 3), np.float32).tobytes()
    for i in range(5):  # one runs, three wait: the fifth is refused
        raw.sock.send_multipart([encode_header(request_header(Op.ENHANCE, 100 + i,
                                                              **spec.to_fields())), pixels])
    finals: dict[int, dict[str, Any]] = {}
    while len(finals) < 5 and raw.sock.poll(30_000):
        reply = msgpack.unpackb(raw.sock.recv_multipart()[0], raw=False)
        if reply["event"] in ("result", "error"):
            finals[reply["id"]] = reply
    assert [finals[100 + i]["event"] for i in range(5)] == ["result"] * 4 + ["error"]
    assert finals[104]["code"] == "busy" and "try again" in finals[104]["message"]


def test_fuzz_worker_survives_and_memory_is_bounded(fuzz: tuple[Env, Raw],
                                                    reference: Enhancer) -> None:
    env, raw = fuzz
    pid = env.pid()
    rng = np.random.default_rng(0)
    junk = [[bytes(rng.integers(0, 256, int(n), dtype=np.uint8))]
            for n in rng.integers(1, 999, 300)]
    for frames in junk:  # warm up allocator pools
        assert raw.ask(frames) is not None
    before = _rss_kib(pid)
    for _ in range(6):
        for frames in junk:
            assert raw.ask(frames) is not None
        spec = PixelSpec((200, 200, 3), "uint8", "rgb")  # truncated, huge and odd pixels
        for shape in ([200, 200, 3], [60000, 60000, 4], [1, 1, 3]):
            header = request_header(Op.ENHANCE, 5, **{**spec.to_fields(), "shape": shape})
            reply = raw.ask([encode_header(header), b"\0" * 1000])
            assert reply is not None and reply["event"] == "error"
    grown = _rss_kib(pid) - before
    assert grown < 20_000, f"worker memory grew by {grown} KiB"
    # over ZMQ_MAXMSGSIZE: ZeroMQ drops the connection, no reply is possible...
    big = PixelSpec((600, 600, 4), "float32", "rgba")
    header = encode_header(request_header(Op.ENHANCE, 6, **big.to_fields()))
    raw.sock.send_multipart([header, bytes(big.nbytes)])
    assert not raw.sock.poll(1000)
    # ...and the worker goes on: a normal request still succeeds
    with WorkerClient(autostart=False) as c:
        image = _image((33, 44, 3), np.uint8, seed=8)
        assert np.array_equal(c.enhance(image), reference.enhance(image))
        assert c.hello()["pid"] == pid


# --------------------------------------------------------------------------- lowlight enhance


def _enhance(*argv: str | Path) -> int:
    """``lowlight enhance ARGV`` (its module alone, whatever else ``lowlight`` registers)."""
    import argparse

    from lowlight import enhance_cmd

    parser = argparse.ArgumentParser()
    enhance_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["enhance", "-q", *map(str, argv)])
    return int(args.handler(args))


def test_registered_as_lowlight_worker() -> None:
    from lowlight.cli import SUBCOMMAND_MODULES

    assert "worker.cli" in SUBCOMMAND_MODULES


def test_enhance_command_same_output_with_and_without_worker(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hybridnet.imageio import read_image, write_image

    src = write_image(tmp_path / "in.png", _image((90, 120, 3), np.uint16, seed=12))
    requests_before = env.log.read_text().count("enhancing")
    with pytest.MonkeyPatch.context() as mp:  # the module's worker is the one to use
        mp.setenv("XDG_RUNTIME_DIR", str(env.run))
        mp.setenv("XDG_STATE_HOME", str(env.root / "state"))
        common = ("--weights", env.weights, "--device", "cpu", "--tile-size", "136")
        assert _enhance(src, "-o", tmp_path / "w.png", *common) == 0
        assert _enhance(src, "-o", tmp_path / "p.png", *common, "--no-worker") == 0
        assert "note" not in capsys.readouterr().err
        assert env.log.read_text().count("enhancing") == requests_before + 1  # the worker ran
        a, b = read_image(tmp_path / "w.png").pixels, read_image(tmp_path / "p.png").pixels
        assert a.dtype == np.uint16 and np.array_equal(a, b)
        assert (tmp_path / "w.png").read_bytes() == (tmp_path / "p.png").read_bytes()
        # a running worker with other weights is not used: this process does the work
        torch.manual_seed(2)
        other = save_model(HybridNet(HybridNetConfig.tiny()), tmp_path / "other.safetensors")
        assert _enhance(src, "-o", tmp_path / "o.png", "--weights", other, "--device",
                        "cpu") == 0
        assert "does not match: it uses other weights" in capsys.readouterr().err
        assert _enhance(src, "-o", tmp_path / "o2.png", "--weights", other, "--no-worker") == 0
        assert (tmp_path / "o.png").read_bytes() == (tmp_path / "o2.png").read_bytes()
        assert env.log.read_text().count("enhancing") == requests_before + 1


def test_more_clients_than_the_queue_wait_their_turn(weights: Path, reference: Enhancer) -> None:
    """Twelve clients at once into a worker with room for two: none fails, every result is
    the in-process one, and the ones that waited were told so (no internal class names)."""
    with private_env(weights) as env:
        start = [*env.start_args(), "--max-queue", "2"]
        inputs = [_image((120, 140, 3), np.uint8, seed=500 + c) for c in range(12)]
        results: dict[int, np.ndarray] = {}
        notices: dict[int, list[str]] = {}
        waits: dict[int, int] = {}
        errors: list[BaseException] = []
        WorkerClient(start_args=start).hello()  # one worker, started with the small queue

        def run(c: int) -> None:
            try:
                with WorkerClient(autostart=False, runtime_dir=env.folder) as cl:
                    waits[c] = 0

                    def waited(_s: float) -> None:
                        waits[c] += 1

                    results[c] = cl.enhance(inputs[c], tile_size=136, on_wait=waited)
                    notices[c] = cl.notices
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(c,)) for c in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=240)
        assert not errors, errors
        assert len(results) == 12
        for c, out in results.items():
            assert np.array_equal(out, reference.enhance(inputs[c], tile_size=136)), c
        queued = [c for c, n in waits.items() if n]
        assert queued, "with room for 2 of 12, some clients must have waited"
        for c in queued:
            assert any("waited" in n and "for its turn" in n for n in notices[c]), notices[c]
