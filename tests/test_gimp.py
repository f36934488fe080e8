"""The GIMP 3 plug-in in real GIMP (headless, in a Debian chroot), and its bridge protocol.

``TestBridgeProtocol`` runs everywhere (no GIMP, a stand-in client), and so does
``TestBridgeWithWorker`` (the bridge's own client and a worker with a tiny model). The GIMP
tests need the chroot built by ``scripts/gimp-chroot`` (CI builds it; locally point
``LOWLIGHT_GIMP_CHROOT`` at one) and root; without them they are skipped with the reason.

One module-wide setup: ``lowlight install`` (the project's venv Python, bind-mounted into
the chroot) installs the plug-in into the chroot user's GIMP folder, and a worker with a
tiny model runs on the host with its ipc socket in a folder both sides see. Then one
``gimp-console`` batch run per mode (bridge, direct) applies the filter through the PDB
to every case of ``CASES``; ``tests/gimp/batch.py`` records pixels and statuses and the
checks here compare them with what the worker computes for the same pixels.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _tiny_worker as tw
import numpy as np
import pytest

from plugin.gimp_bridge import PROTOCOL, read_message, serve, write_message

from gimp.chroot import REPO, GimpChroot, batch_code, run_group, unavailable_reason

PROC = "plug-in-enhance-low-light"
PLUGIN_FILE = REPO / "plugin" / "gimp" / "enhance_low_light" / "enhance_low_light.py"
_CONTEXT = re.search(r"^CONTEXT = (\d+)", PLUGIN_FILE.read_text(), re.M)
assert _CONTEXT is not None, "the plug-in defines CONTEXT (pixels around the selection)"
CONTEXT = int(_CONTEXT.group(1))
REASON = unavailable_reason()
needs_gimp = pytest.mark.skipif(REASON is not None, reason=REASON or "")


# --------------------------------------------------------------------------- bridge


class _StandIn:
    """What the bridge needs of ``WorkerClient``: doubles the colour, keeps alpha."""

    def __init__(self, start_args: list[str], block: threading.Event | None = None,
                 error: Exception | None = None) -> None:
        self.start_args = start_args
        self.block = block
        self.error = error
        self.closed = False
        self.brightness: list[Any] = []  # as each request passed it on

    def enhance(self, image: np.ndarray, strength: Any, *, progress: Any = None,
                cancel: Any = None, brightness: float = 0.0) -> np.ndarray:
        from worker.client import Cancelled

        self.brightness.append(brightness)
        if self.error is not None:
            raise self.error
        if self.block is not None:
            self.block.set()
            deadline = time.monotonic() + 10
            while not cancel():
                if time.monotonic() > deadline:
                    raise AssertionError("the bridge never cancelled")
                time.sleep(0.01)
            raise Cancelled()
        progress(1, 2)
        progress(2, 2)
        out = image.copy()
        c = 1 if image.shape[2] in (1, 2) else 3
        out[..., :c] = np.clip(image[..., :c] * 2, 0, 1) if strength == "auto" else \
            image[..., :c] * float(strength)
        return out


def _request(image: np.ndarray, **extra: Any) -> bytes:
    h, w, c = image.shape
    header = {"op": "enhance", "protocol": PROTOCOL, "width": w, "height": h, "channels": c,
              "strength": 0.5, "crop": [0, 0, w, h], "nbytes": image.nbytes, **extra}
    out = io.BytesIO()
    write_message(out, header, image.astype(np.float32).tobytes())
    return out.getvalue()


def _replies(data: bytes) -> list[tuple[dict[str, Any], bytes]]:
    stream = io.BytesIO(data)
    out = []
    while (message := read_message(stream)) is not None:
        out.append(message)
    return out


class TestBridgeProtocol:
    def test_progress_then_cropped_result(self) -> None:
        image = np.random.default_rng(0).random((6, 8, 4), dtype=np.float32)
        made: list[_StandIn] = []

        def factory(args: list[str]) -> _StandIn:
            made.append(_StandIn(args))
            return made[-1]

        stdin = io.BytesIO(_request(image, crop=[2, 1, 5, 3], start_args=["--device", "cpu"])
                           + b'{"op": "bye"}\n')
        stdout = io.BytesIO()
        assert serve(stdin, stdout, factory) == 0
        replies = _replies(stdout.getvalue())
        assert [h["event"] for h, _ in replies] == ["progress", "progress", "result"]
        assert (replies[1][0]["done"], replies[1][0]["total"]) == (2, 2)
        header, payload = replies[-1]
        assert (header["width"], header["height"], header["channels"]) == (5, 3, 4)
        got = np.frombuffer(payload, np.float32).reshape(3, 5, 4)
        want = image[1:4, 2:7].copy()
        want[..., :3] *= 0.5
        np.testing.assert_array_equal(got, want)
        assert made[0].start_args == ["--device", "cpu"]

    def test_two_requests_share_one_client(self) -> None:
        image = np.zeros((2, 3, 1), np.float32)
        made: list[_StandIn] = []

        def factory(args: list[str]) -> _StandIn:
            made.append(_StandIn(args))
            return made[-1]

        stdout = io.BytesIO()
        serve(io.BytesIO(_request(image) + _request(image)), stdout, factory)
        assert [h["event"] for h, _ in _replies(stdout.getvalue())].count("result") == 2
        assert len(made) == 1

    def test_worker_error_is_passed_on(self) -> None:
        from worker.client import WorkerError

        error = WorkerError("no_model", "the worker could not load its weights; reinstall")
        stdout = io.BytesIO()
        status = serve(io.BytesIO(_request(np.zeros((2, 2, 3), np.float32))), stdout,
                       lambda args: _StandIn(args, error=error))
        (reply,) = _replies(stdout.getvalue())
        assert status == 1
        assert reply[0] == {"event": "error", "code": "no_model",
                            "message": "the worker could not load its weights; reinstall"}

    @pytest.mark.parametrize(("extra", "code"), [
        ({"protocol": PROTOCOL + 1}, "version_mismatch"),
        ({"channels": 5}, "bad_request"),
        ({"crop": [0, 0, 9, 9]}, "bad_request"),
        ({"strength": 3}, "bad_request"),
        ({"brightness": 2}, "bad_request"),
        ({"start_args": "--weights x"}, "bad_request"),
    ])
    def test_bad_requests_get_an_error(self, extra: dict[str, Any], code: str) -> None:
        stdout = io.BytesIO()
        serve(io.BytesIO(_request(np.zeros((2, 2, 3), np.float32), **extra)), stdout,
              lambda args: _StandIn(args))
        (reply,) = _replies(stdout.getvalue())
        assert reply[0]["event"] == "error" and reply[0]["code"] == code

    def test_brightness_is_passed_on_and_defaults_to_zero(self) -> None:
        """0 when the header has none (what plug-ins from before brightness send)."""
        made: list[_StandIn] = []

        def factory(args: list[str]) -> _StandIn:
            made.append(_StandIn(args))
            return made[-1]

        image = np.zeros((2, 3, 3), np.float32)
        stdout = io.BytesIO()
        requests = [_request(image), _request(image, brightness=1), _request(image,
                                                                              brightness=-0.25)]
        assert serve(io.BytesIO(b"".join(requests)), stdout, factory) == 0
        assert [h["event"] for h, _ in _replies(stdout.getvalue())].count("result") == 3
        assert made[0].brightness == [0.0, 1.0, -0.25]
        assert all(type(b) is float for b in made[0].brightness)

    @pytest.mark.parametrize("bad", [1.5, -2, float("nan"), "brighter", True, None, [0.5]])
    def test_bad_brightness_is_refused_with_the_range(self, bad: Any) -> None:
        made: list[_StandIn] = []

        def factory(args: list[str]) -> _StandIn:
            made.append(_StandIn(args))
            return made[-1]

        stdout = io.BytesIO()
        status = serve(io.BytesIO(_request(np.zeros((2, 2, 3), np.float32), brightness=bad)),
                       stdout, factory)
        (reply,) = _replies(stdout.getvalue())
        assert status == 1
        assert reply[0]["event"] == "error" and reply[0]["code"] == "bad_request"
        message = reply[0]["message"]
        assert "brightness must be a number from -1 (darker) to 1 (brighter)" in message
        assert message.endswith(f"got {bad!r}")
        assert not made, "a bad request must not start a worker"

    def test_closing_stdin_cancels_the_request(self) -> None:
        """GIMP's cancel ends the plug-in; its pipe closes and the worker job is cancelled."""
        read_fd, write_fd = os.pipe()
        started = threading.Event()
        stdout = io.BytesIO()
        with open(read_fd, "rb") as stdin:
            thread = threading.Thread(target=lambda: serve(
                stdin, stdout, lambda args: _StandIn(args, block=started)))
            thread.start()
            with open(write_fd, "wb") as pipe:
                pipe.write(_request(np.zeros((4, 4, 3), np.float32)))
                pipe.flush()
                assert started.wait(10)
            thread.join(10)
        assert not thread.is_alive()
        (reply,) = _replies(stdout.getvalue())
        assert reply[0]["code"] == "cancelled"

    def test_bridge_module_runs_with_the_project_python(self) -> None:
        """``python -m plugin.gimp_bridge`` (what the plug-in starts) answers a bad request."""
        out = subprocess.run([sys.executable, "-m", "plugin.gimp_bridge"], cwd=REPO,
                             input=b'{"op": "enhance", "protocol": 0}\n',
                             capture_output=True, timeout=60, check=False)
        (reply,) = _replies(out.stdout)
        assert reply[0]["event"] == "error", out.stderr

    def test_bridge_never_imports_torch(self) -> None:
        code = (
            "import io, sys\n"
            "from plugin.gimp_bridge import serve\n"
            "serve(io.BytesIO(b'{\"op\": \"enhance\", \"protocol\": 1}\\n'), io.BytesIO())\n"
            "assert 'worker.client' in sys.modules and 'torch' not in sys.modules\n"
        )
        subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


class TestBridgeWithWorker:
    """``python -m plugin.gimp_bridge`` (what the plug-in starts), with its own client and a
    real worker running the tiny model."""

    def test_brightness_reaches_the_worker(self, tmp_path: Path) -> None:
        weights = tw.write_tiny_weights(tmp_path / "tiny.safetensors")
        image = tw.dark_image(40, 56, np.float32)
        args = tw.start_args(weights)
        results = []
        with tw.private_runtime(tmp_path):
            # One request at a time, as the plug-in does: the end of stdin cancels.
            with subprocess.Popen([sys.executable, "-m", "plugin.gimp_bridge"], cwd=REPO,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE) as bridge:
                assert bridge.stdin is not None and bridge.stdout is not None
                for extra in ({}, {"brightness": 0}, {"brightness": 1.0},
                              {"brightness": -1.0}):
                    bridge.stdin.write(_request(image, strength=1.0, start_args=args, **extra))
                    bridge.stdin.flush()
                    while (reply := read_message(bridge.stdout)) is not None \
                            and reply[0]["event"] == "progress":
                        pass
                    assert reply is not None and reply[0]["event"] == "result", reply
                    results.append(np.frombuffer(reply[1], np.float32).reshape(image.shape))
                bridge.stdin.write(b'{"op": "bye"}\n')
                bridge.stdin.close()
                assert bridge.wait(60) == 0
            from worker.client import WorkerClient

            with WorkerClient(autostart=False) as client:  # the worker the bridge started
                direct = client.enhance(image, 1.0, brightness=1.0)
        absent, zero, up, down = results
        np.testing.assert_array_equal(absent, zero)  # none given: 0, as older plug-ins send
        np.testing.assert_array_equal(up, direct)  # the worker's own result for brightness 1
        # The seeded tiny model is random: brightness changes its input, hence its output,
        # but not reliably toward brighter (that trend is checked with an identity network
        # in tests/test_enhancer.py); a change well above float noise is the check here.
        assert np.abs(up - zero).max() > 1e-3 and np.abs(down - zero).max() > 1e-3
        assert np.abs(up - down).max() > 1e-3


class TestRunGroup:
    """The chroot's command runner: a timeout leaves nothing running behind it."""

    def test_output_and_status(self) -> None:
        out = run_group(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=30)
        assert (out.returncode, out.stdout, out.stderr) == (3, "out\n", "err\n")

    def test_timeout_kills_the_children_too(self, tmp_path: Path) -> None:
        """Like xvfb-run: the direct child waits on a grandchild (Xvfb, GIMP)."""
        pid_file = tmp_path / "pid"
        script = f"sleep 120 >/dev/null 2>&1 & echo $! > {pid_file}; echo started; wait"
        start = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired) as info:
            run_group(["sh", "-c", script], timeout=2)
        assert time.monotonic() - start < 30
        assert "started" in str(info.value.stdout)
        assert _gone_within(int(pid_file.read_text()), 10), "the grandchild outlived the timeout"


    def test_an_interrupt_kills_the_group_too(self, tmp_path: Path) -> None:
        """Ctrl-C reaches pytest, not the new session: the group must still go."""

        class Interrupt(Exception):
            pass

        def interrupt(_signum: int, _frame: object) -> None:
            raise Interrupt

        pid_file = tmp_path / "pid"
        previous = signal.signal(signal.SIGALRM, interrupt)
        start = time.monotonic()
        try:
            signal.alarm(2)
            with pytest.raises(Interrupt):
                run_group(["sh", "-c", f"sleep 120 >/dev/null 2>&1 & echo $! > {pid_file}; wait"],
                          timeout=60)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        assert time.monotonic() - start < 30, "run_group waited for the group to end"
        assert _gone_within(int(pid_file.read_text()), 10), "the grandchild outlived the interrupt"


def _gone_within(pid: int, seconds: float) -> bool:
    """Whether process ``pid`` has ended, waiting up to ``seconds`` for it."""
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


# --------------------------------------------------------------------------- GIMP

#: name -> (base, precision, alpha, raw input format, float read-back format, dtype)
#: Cases: "size" is the image's (W, H), "layer" the layer's (x offset, y offset, W, H).
KINDS: dict[str, tuple[str, str, bool, str, str, str]] = {
    "rgb8": ("rgb", "U8_NON_LINEAR", False, "R'G'B' u8", "R'G'B' float", "uint8"),
    "rgb16": ("rgb", "U16_NON_LINEAR", False, "R'G'B' u16", "R'G'B' float", "uint16"),
    "rgbf_linear": ("rgb", "FLOAT_LINEAR", False, "RGB float", "R'G'B' float", "float32"),
    "gray8": ("gray", "U8_NON_LINEAR", False, "Y' u8", "Y' float", "uint8"),
    "graya16": ("gray", "U16_NON_LINEAR", True, "Y'A u16", "Y'A float", "uint16"),
    "rgba8": ("rgb", "U8_NON_LINEAR", True, "R'G'B'A u8", "R'G'B'A float", "uint8"),
}

CASES: list[dict[str, Any]] = [
    {"name": "rgb8", "kind": "rgb8", "strength": 80.0},
    {"name": "rgb16", "kind": "rgb16", "strength": 100.0},
    {"name": "rgbf_linear", "kind": "rgbf_linear", "strength": 100.0},
    {"name": "gray8", "kind": "gray8", "strength": 100.0},
    {"name": "graya16", "kind": "graya16", "strength": 60.0},
    {"name": "rgba8", "kind": "rgba8", "strength": 100.0},
    {"name": "auto", "kind": "rgb8", "auto": True},
    {"name": "feathered", "kind": "rgb8", "strength": 100.0, "size": (96, 80),
     "selection": {"rect": [24, 20, 50, 40], "feather": 10.0}},
    {"name": "offset_layer", "kind": "rgba8", "strength": 100.0, "size": (96, 80),
     "layer": (30, 20, 50, 40), "selection": {"rect": [44, 34, 50, 40], "feather": 8.0}},
    {"name": "brightness", "kind": "rgb16", "strength": 100.0, "brightness": 1.0},
    {"name": "last_values", "kind": "rgb8", "run_mode": "WITH_LAST_VALS"},
]
ONE_CASE: dict[str, Any] = {"name": "rgb8", "kind": "rgb8", "strength": 100.0}


def _dark_pixels(kind: str, h: int, w: int, seed: int) -> np.ndarray:
    """A dark, noisy picture in the kind's channels and dtype (raw, as GIMP stores it)."""
    base, _, alpha, _, _, dtype = KINDS[kind]
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    rgb = np.stack([0.05 + 0.15 * xx, 0.04 + 0.1 * yy, 0.03 + 0.08 * xx * yy], -1)
    rgb = np.clip(rgb + rng.normal(0, 0.01, rgb.shape), 0, 1).astype(np.float32)
    colour = rgb if base == "rgb" else rgb[..., 1:2]
    if alpha:
        a = np.linspace(0.2, 1.0, h * w, dtype=np.float32).reshape(h, w, 1)
        colour = np.concatenate([colour, a], -1)
    if dtype == "float32":
        return np.ascontiguousarray(colour, dtype=np.float32)
    scale = np.iinfo(dtype).max
    return np.round(colour * scale).astype(dtype)


def _to_model_float(raw: np.ndarray, kind: str) -> np.ndarray:
    """What the plug-in reads: sRGB-encoded float (``R'G'B'(A) float``, ``Y'(A) float``)."""
    _, _, alpha, _, _, dtype = KINDS[kind]
    if dtype != "float32":
        return raw.astype(np.float32) / np.float32(np.iinfo(dtype).max)
    out = raw.astype(np.float64)
    c = out.shape[2] - (1 if alpha else 0)
    lin = out[..., :c]
    out[..., :c] = np.where(lin <= 0.0031308, 12.92 * lin,
                            1.055 * np.power(np.maximum(lin, 0), 1 / 2.4) - 0.055)
    return out.astype(np.float32)


def _quantize(values: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float32":
        return values
    scale = np.iinfo(dtype).max
    return np.round(np.clip(values, 0, 1) * scale).astype(np.int64)


@dataclass
class GimpSetup:
    chroot: GimpChroot
    work: Path
    home: Path
    state: Path
    run_dir: Path
    weights: Path
    install: subprocess.CompletedProcess[str]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def env(self, mode: str, runtime: Path | None = None, log: str = "run") -> dict[str, str]:
        return {"HOME": str(self.home), "XDG_RUNTIME_DIR": str(runtime or self.run_dir),
                "XDG_STATE_HOME": str(self.state), "LOWLIGHT_GIMP_MODE": mode,
                "LOWLIGHT_GIMP_LOG": str(self.work / f"{log}-{mode}.log")}

    def worker(self, *args: str, runtime: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime or self.run_dir),
               "XDG_STATE_HOME": str(self.state)}
        return subprocess.run(["nice", "-n", "10", sys.executable, "-m", "worker", *args],
                              env=env, capture_output=True, text=True, timeout=180, cwd=REPO,
                              check=False)

    def expected(self, image: np.ndarray, strength: float | str,
                 brightness: float = 0.0) -> np.ndarray:
        from worker.client import WorkerClient

        with WorkerClient(autostart=False, runtime_dir=self.run_dir / "enhance-low-light") as c:
            return c.enhance(np.ascontiguousarray(image, np.float32), strength,
                             brightness=brightness)

    def private_dir(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(mode=0o700, exist_ok=True)
        path.chmod(0o700)
        return path


def _pluginrc(chroot: GimpChroot, work: Path) -> Path:
    """GIMP's record of the chroot's own plug-ins, made once per chroot (a first run with
    a fresh HOME queries them all, ~6 s; with the record a run takes ~2 s)."""
    template = chroot.root / "var" / "cache" / "lowlight-tests" / "pluginrc"
    if not template.is_file():
        home = work / "template-home"
        out = chroot.gimp_batch("pass", {"HOME": str(home)}, timeout=240)
        made = home / ".config" / "GIMP" / "3.0" / "pluginrc"
        assert made.is_file(), out.stderr[-3000:]
        template.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(made, template)
    return template


@pytest.fixture(scope="module")
def gimp(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if REASON is not None:
        pytest.skip(REASON)
    import torch

    from hybridnet import HybridNet, HybridNetConfig, save_model

    work = tmp_path_factory.mktemp("gimp")
    work.chmod(0o755)
    torch.manual_seed(0)
    weights = save_model(HybridNet(HybridNetConfig.tiny()), work / "tiny.safetensors")
    home, state = work / "home", work / "state"
    home.mkdir()
    chroot = GimpChroot([work])
    chroot.mount()
    setup: GimpSetup | None = None
    try:
        config = home / ".config" / "GIMP" / "3.0"
        config.mkdir(parents=True)
        (config / "gimprc").write_text("(show-welcome-dialog no)\n")
        shutil.copy2(_pluginrc(chroot, work), config / "pluginrc")
        install = chroot.run([sys.executable, "-m", "lowlight", "install", "--no-desktop",
                              "--weights", str(weights), "--device", "cpu"],
                             {"HOME": str(home), "XDG_STATE_HOME": str(state)}, timeout=120)
        setup = GimpSetup(chroot, work, home, state, work / "run", weights, install)
        setup.private_dir("run")
        started = setup.worker("start", "--weights", str(weights), "--device", "cpu")
        assert started.returncode == 0, started.stdout + started.stderr
        yield setup
    finally:
        if setup is not None:
            setup.worker("stop")
        chroot.umount()


def _run_cases(setup: GimpSetup, mode: str, tag: str, cases: list[dict[str, Any]],
               runtime: Path | None = None) -> dict[str, Any]:
    """One GIMP batch run (tests/gimp/batch.py) over ``cases``, in WORK/``tag``."""
    folder = setup.work / tag
    folder.mkdir()
    specs = []
    for i, case in enumerate(cases):
        base, precision, alpha, in_fmt, float_fmt, _ = KINDS[case["kind"]]
        w, h = case.get("size", (64, 48))
        lx, ly, lw, lh = case.get("layer", (0, 0, w, h))
        raw = _dark_pixels(case["kind"], lh, lw, seed=i)
        (folder / f"{case['name']}.in").write_bytes(raw.tobytes())
        specs.append({**case, "base": base, "precision": precision, "alpha": alpha,
                      "in_format": in_fmt, "float_format": float_fmt, "width": w,
                      "height": h, "layer": [lx, ly, lw, lh], "input": f"{case['name']}.in"})
    (folder / "cases.json").write_text(json.dumps(specs))
    out = setup.chroot.gimp_batch(
        batch_code(REPO / "tests" / "gimp" / "batch.py", WORK=str(folder), PROC=PROC),
        setup.env(mode, runtime=runtime, log=tag))
    results_file = folder / "results.json"
    assert results_file.is_file(), f"GIMP exited with {out.returncode}:\n{out.stderr[-3000:]}"
    results = json.loads(results_file.read_text())
    results.update(returncode=out.returncode, stderr=out.stderr, folder=str(folder),
                   specs={s["name"]: s for s in specs})
    return results


@pytest.fixture(scope="module", params=["bridge", "direct"])
def batch(request: pytest.FixtureRequest, gimp: GimpSetup) -> tuple[GimpSetup, dict[str, Any]]:
    mode = request.param
    if mode not in gimp.results:
        gimp.results[mode] = _run_cases(gimp, mode, f"cases-{mode}", CASES)
    return gimp, gimp.results[mode]


def _case(batch: tuple[GimpSetup, dict[str, Any]], name: str) -> dict[str, Any]:
    """A case's recorded result with its pixels loaded (``before``, ``after``...)."""
    results = batch[1]
    spec = results["specs"][name]
    got = dict(results["cases"][name])
    assert got["status"] == "success", got.get("message")
    _, _, alpha, _, _, dtype = KINDS[spec["kind"]]
    lw, lh = spec["layer"][2:]
    channels = (3 if spec["base"] == "rgb" else 1) + (1 if alpha else 0)
    folder = Path(results["folder"])

    def load(suffix: str, dt: str) -> np.ndarray:
        return np.frombuffer((folder / f"{name}.{suffix}").read_bytes(), dt).reshape(
            lh, lw, channels)

    got.update(spec=spec, dtype=dtype, before=load("before", dtype),
               after=load("after", dtype), after_float=load("after-float", "float32"))
    if (folder / f"{name}.mask").is_file():
        mask = np.frombuffer((folder / f"{name}.mask").read_bytes(), np.float32)
        lx, ly = spec["layer"][:2]
        got["mask"] = mask.reshape(spec["height"], spec["width"])[ly:ly + lh, lx:lx + lw]
    return got


def _expected(setup: GimpSetup, case: dict[str, Any], strength: float | str,
              brightness: float = 0.0) -> np.ndarray:
    """The worker's result for the case, computed the way the plug-in asks for it."""
    src = _to_model_float(case["before"], case["spec"]["kind"])
    x, y, w, h = case["intersect"]
    lh, lw = src.shape[:2]
    x0, y0 = max(0, x - CONTEXT), max(0, y - CONTEXT)
    x1, y1 = min(lw, x + w + CONTEXT), min(lh, y + h + CONTEXT)
    full = np.array(src, copy=True)  # outside the selection's box: the original
    out = setup.expected(src[y0:y1, x0:x1], strength, brightness)
    full[y:y + h, x:x + w] = out[y - y0:y - y0 + h, x - x0:x - x0 + w]
    return full


@needs_gimp
class TestInstallIntoGimp:
    def test_lowlight_install_finds_the_chroot_gimp(self, gimp: GimpSetup) -> None:
        assert gimp.install.returncode == 0, gimp.install.stderr
        assert "GIMP 3.0" in gimp.install.stdout
        plugin = gimp.home / ".config/GIMP/3.0/plug-ins/enhance_low_light/enhance_low_light.py"
        assert plugin.is_file() and os.access(plugin, os.X_OK)

    def test_procedure_is_registered(self, batch: tuple[GimpSetup, dict[str, Any]]) -> None:
        _, results = batch
        assert results["procedure_found"]
        assert results["gimp_version"].startswith("3.")
        assert results["returncode"] == 0, results["stderr"][-2000:]


@needs_gimp
class TestFilterInGimp:
    """Each test runs in bridge mode and in direct mode (the ``batch`` fixture's params)."""

    def test_mode_used(self, batch: tuple[GimpSetup, dict[str, Any]], request: Any) -> None:
        setup, _ = batch
        mode = request.node.callspec.params["batch"]
        log = (setup.work / f"cases-{mode}-{mode}.log").read_text()
        assert f"mode={mode}" in log
        if mode == "bridge":  # GIMP's Python needs no numpy for the bridge
            assert "mode=bridge numpy_loaded=False" in log
        assert "crash" not in log

    @pytest.mark.parametrize("name", ["rgb8", "rgb16", "gray8", "graya16", "rgba8"])
    def test_pixels_are_the_workers_at_the_image_precision(
        self, batch: tuple[GimpSetup, dict[str, Any]], name: str
    ) -> None:
        setup = batch[0]
        case = _case(batch, name)
        strength = case["spec"]["strength"] / 100
        want = _quantize(_expected(setup, case, strength), case["dtype"])
        after = case["after"].astype(np.int64)
        assert not np.array_equal(case["after"], case["before"]), "nothing changed"
        colour = 3 if case["spec"]["base"] == "rgb" else 1
        assert np.abs(after[..., :colour] - want[..., :colour]).max() <= 1
        if case["spec"]["alpha"]:  # alpha kept bit for bit
            np.testing.assert_array_equal(case["after"][..., colour:],
                                          case["before"][..., colour:])
        assert case["precision_after"].endswith(case["spec"]["precision"])
        assert case["layers"] == 1

    def test_16_bit_keeps_16_bit_precision(
        self, batch: tuple[GimpSetup, dict[str, Any]]
    ) -> None:
        after = _case(batch, "rgb16")["after"]
        assert (after % 257 != 0).mean() > 0.5  # not values of an 8-bit round trip

    def test_linear_float_image_gets_srgb_values_to_the_model(
        self, batch: tuple[GimpSetup, dict[str, Any]]
    ) -> None:
        setup = batch[0]
        case = _case(batch, "rgbf_linear")
        want = _expected(setup, case, 1.0)
        np.testing.assert_allclose(case["after_float"], want, atol=2e-3)
        assert "FLOAT_LINEAR" in case["precision_after"]
        # a float image keeps values an 8 or 16-bit round trip could not hold
        assert (np.abs(case["after_float"] * 65535 - np.round(case["after_float"] * 65535))
                > 0.05).mean() > 0.5

    def test_auto_strength(self, batch: tuple[GimpSetup, dict[str, Any]]) -> None:
        setup = batch[0]
        case = _case(batch, "auto")
        want = _quantize(_expected(setup, case, "auto"), "uint8")
        assert np.abs(case["after"].astype(np.int64) - want).max() <= 1

    def test_brightness_reaches_the_network(
        self, batch: tuple[GimpSetup, dict[str, Any]], request: Any
    ) -> None:
        """The PDB argument ``brightness`` = 1 gives the worker's result for brightness 1
        (16-bit, so a 1-level match tells it apart from brightness 0's result)."""
        setup = batch[0]
        case = _case(batch, "brightness")
        after = case["after"].astype(np.int64)
        want = _quantize(_expected(setup, case, 1.0, case["spec"]["brightness"]), "uint16")
        plain = _quantize(_expected(setup, case, 1.0), "uint16")
        assert np.abs(want - plain).max() > 20, "brightness 1 makes no difference here"
        assert np.abs(after - want).max() <= 1
        mode = request.node.callspec.params["batch"]
        log = (setup.work / f"cases-{mode}-{mode}.log").read_text()
        assert "strength=1.0 brightness=1.0" in log

    def test_last_values_run_works(self, batch: tuple[GimpSetup, dict[str, Any]]) -> None:
        case = _case(batch, "last_values")
        assert not np.array_equal(case["after"], case["before"])

    @pytest.mark.parametrize("name", ["feathered", "offset_layer"])
    def test_selection_is_respected_feather_included(
        self, batch: tuple[GimpSetup, dict[str, Any]], name: str
    ) -> None:
        setup = batch[0]
        case = _case(batch, name)
        mask = case["mask"]
        before, after = case["before"].astype(np.int64), case["after"].astype(np.int64)
        full = _quantize(_expected(setup, case, 1.0), "uint8")
        outside, inside = mask == 0, mask >= 1
        edge = ~outside & ~inside
        assert outside.any() and inside.any() and edge.sum() > 50  # a real feather
        np.testing.assert_array_equal(after[outside], before[outside])
        assert np.abs(after[inside][:, :3] - full[inside][:, :3]).max() <= 1
        lo, hi = np.minimum(before, full), np.maximum(before, full)
        assert ((after[edge] >= lo[edge] - 1) & (after[edge] <= hi[edge] + 1)).all()
        if case["spec"]["alpha"]:
            np.testing.assert_array_equal(after[..., 3], before[..., 3])
        # a partly selected pixel is a blend: strictly between for most edge pixels
        moved = np.abs(after[edge] - before[edge]).sum(-1) > 0
        assert moved.mean() > 0.5


@needs_gimp
class TestFailuresInGimp:
    @pytest.mark.parametrize("mode", ["bridge", "direct"])
    def test_missing_worker_is_a_clear_error_and_the_image_is_untouched(
        self, gimp: GimpSetup, mode: str
    ) -> None:
        """No worker runs and none can start (broken weights): a message, no change."""
        broken = gimp.work / "broken.safetensors"
        broken.write_bytes(b"not a model")
        settings_file = gimp.home / ".config/GIMP/3.0/plug-ins/enhance_low_light/" \
            "enhance_low_light.json"
        saved = settings_file.read_text()
        settings = json.loads(saved)
        settings["worker_args"] = ["--weights", str(broken), "--device", "cpu"]
        settings_file.write_text(json.dumps(settings))
        try:
            results = _run_cases(gimp, mode, f"noworker-{mode}", [ONE_CASE],
                                 runtime=gimp.private_dir(f"run-empty-{mode}"))
        finally:
            settings_file.write_text(saved)
        got = results["cases"]["rgb8"]
        assert results["returncode"] == 0  # GIMP and the batch script did not crash
        assert got["status"] == "execution-error"
        message = got["message"]
        assert "worker" in message.lower() and "could not be started" in message
        folder = Path(results["folder"])
        assert (folder / "rgb8.after").read_bytes() == (folder / "rgb8.before").read_bytes()

    @pytest.mark.parametrize("mode", ["bridge", "direct"])
    def test_worker_is_started_when_none_runs(self, gimp: GimpSetup, mode: str) -> None:
        runtime = gimp.private_dir(f"run-auto-{mode}")
        try:
            results = _run_cases(gimp, mode, f"autostart-{mode}", [ONE_CASE], runtime=runtime)
            assert results["cases"]["rgb8"]["status"] == "success", results["cases"]
            status = gimp.worker("status", "--json", runtime=runtime)
            assert json.loads(status.stdout)["pid"], status.stdout + status.stderr
        finally:
            gimp.worker("stop", runtime=runtime)


@needs_gimp
def test_one_ctrl_z_in_the_gui_restores_the_original(gimp: GimpSetup) -> None:
    """GIMP's GUI under Xvfb: the filter, then one Ctrl+Z sent to the image window."""
    from PIL import Image

    folder = gimp.work / "gui"
    folder.mkdir()
    pixels = _dark_pixels("rgb8", 48, 64, seed=7)
    Image.fromarray(pixels).save(folder / "undo-test.png")
    code = batch_code(REPO / "tests" / "gimp" / "gui_undo.py", WORK=str(folder), PROC=PROC)
    env = {**gimp.env("auto", log="gui"), "WORK": str(folder),
           "IMAGE": str(folder / "undo-test.png"), "GIMP_BATCH_CODE": code}
    log = folder / "gimp-gui.out"
    try:  # below pytest's own limit (300 s), so that a hang shows GIMP's log
        out = gimp.chroot.run(["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24",
                               str(REPO / "tests" / "gimp" / "gui_undo.sh")], env, timeout=240)
    except subprocess.TimeoutExpired as exc:
        tail = log.read_text()[-3000:] if log.is_file() else "(no GIMP log)"
        raise AssertionError(f"the GUI run took over 240 s; GIMP's log:\n{tail}") from exc
    result = json.loads((folder / "gui.json").read_text()) if (folder / "gui.json").is_file() \
        else {}
    assert out.returncode == 0 and result.get("status") == "success", (
        out.stdout + out.stderr + (log.read_text()[-3000:] if log.is_file() else ""))
    before = (folder / "gui.before").read_bytes()
    assert (folder / "gui.after").read_bytes() != before
    assert (folder / "gui.undone").read_bytes() == before
