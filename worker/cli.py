"""``lowlight worker start|stop|status|log``: the background worker from the command line.

``start`` detaches a worker (``python -m worker run ...`` in a new session) and returns
once it answers; a second ``start`` reuses the running one (one worker per user, see
:class:`worker.protocol.InstanceLock`). ``stop`` asks it to exit (then SIGTERM).
``status`` prints endpoint, pid, device, model and uptime (``--json``: a JSON object with
at least ``endpoint`` and ``pid``; exit status 3 when no worker runs). ``log`` prints the
tail of the worker's log. Hidden: ``run`` (the worker itself, in the foreground; what
``start`` detaches) and ``launch`` (the detaching helper used by the client library).

Importing this module costs no torch: the server is imported only by ``run``.
``python -m worker ...`` is the same as ``lowlight worker ...``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_NOT_RUNNING = 3


def device_arg(text: str) -> str:
    if re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        return text
    raise argparse.ArgumentTypeError(f"device must be auto, cpu, cuda or cuda:N; got {text!r}")


def register(subparsers: Any) -> None:
    """Add ``worker`` to the ``lowlight`` command (see :mod:`lowlight.cli`)."""
    p = subparsers.add_parser(
        "worker",
        help="the background worker that keeps the model loaded for every client",
        description=(
            "The worker is a background process that loads the model once and enhances "
            "images for the CLI, the desktop panel and GIMP. Clients start it when needed; "
            "it exits after --idle-timeout seconds without requests."
        ),
    )
    add_commands(p)


def add_commands(p: argparse.ArgumentParser) -> None:
    """The ``start|stop|status|log`` (and hidden ``run|launch``) subcommands of ``p``."""
    p.set_defaults(handler=lambda _args: _usage(p))
    sub = p.add_subparsers(dest="worker_command", metavar="{start,stop,status,log}")

    start = sub.add_parser("start", help="start the worker in the background (or reuse it)",
                           description="Start the worker in the background and return once "
                           "it answers; when one already runs, it is reused.")
    _server_options(start)
    start.set_defaults(handler=cmd_start)

    stop = sub.add_parser("stop", help="stop the running worker")
    _runtime_option(stop)
    stop.set_defaults(handler=cmd_stop)

    status = sub.add_parser("status", help="endpoint, pid, device, model and uptime")
    status.add_argument("--json", action="store_true", help="print a JSON object")
    _runtime_option(status)
    status.set_defaults(handler=cmd_status)

    log = sub.add_parser("log", help="print the end of the worker's log")
    log.add_argument("-n", "--lines", type=int, default=40, metavar="N",
                     help="number of lines (default 40)")
    log.set_defaults(handler=cmd_log)

    run = sub.add_parser("run", description="Run the worker in the foreground (what `start` "
                         "detaches).")
    _server_options(run)
    run.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    run.set_defaults(handler=cmd_run)

    launch = sub.add_parser("launch")
    launch.add_argument("--timeout", type=float, default=120.0)
    launch.add_argument("run_args", nargs=argparse.REMAINDER)
    launch.set_defaults(handler=cmd_launch)


def _server_options(p: argparse.ArgumentParser) -> None:
    from worker.protocol import DEFAULT_IDLE_TIMEOUT

    p.add_argument("--weights", type=Path, help="model weights (default: the bundled model)")
    p.add_argument("--device", type=device_arg, default="auto", metavar="auto|cpu|cuda",
                   help="where the network runs (default auto: the GPU when available)")
    p.add_argument("--tcp", action="store_true",
                   help="listen on 127.0.0.1 (CURVE-authenticated) instead of a private "
                        "Unix socket")
    p.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT, metavar="S",
                   help=f"exit after S seconds without requests (default {DEFAULT_IDLE_TIMEOUT:g}"
                        "; 0 = never)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for the network (default: torch's choice)")
    p.add_argument("--max-pixels", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--max-queue", type=int, default=None, help=argparse.SUPPRESS)
    _runtime_option(p)


def _runtime_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runtime-dir", type=Path, default=None, help=argparse.SUPPRESS)


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _run_args(args: argparse.Namespace) -> list[str]:
    out = ["--device", args.device, "--idle-timeout", f"{args.idle_timeout:g}"]
    if args.weights is not None:
        out += ["--weights", str(args.weights)]
    if args.tcp:
        out.append("--tcp")
    if args.threads:
        out += ["--threads", str(args.threads)]
    if args.max_pixels:
        out += ["--max-pixels", str(args.max_pixels)]
    if args.max_queue:
        out += ["--max-queue", str(args.max_queue)]
    return out


def cmd_start(args: argparse.Namespace) -> int:
    from worker.client import WorkerClient, WorkerError, start_worker

    if args.weights is not None and not args.weights.is_file():
        print(f"lowlight worker start: {args.weights}: the weights file does not exist",
              file=sys.stderr)
        return 2
    try:
        endpoint, started = start_worker(_run_args(args), runtime_dir=args.runtime_dir)
        with WorkerClient(autostart=False, runtime_dir=args.runtime_dir) as client:
            info = client.hello()
    except WorkerError as exc:
        print(f"lowlight worker start: {exc}", file=sys.stderr)
        return 1
    if not started:
        print(f"a worker is already running (pid {endpoint.pid}); reusing it")
        for note in mismatch_notes(info, args.weights, args.device):
            print(f"note: {note}; run `lowlight worker stop` first to start another")
    else:
        print(f"worker started (pid {endpoint.pid})")
    _print_status(endpoint.public(), info)
    return 0


def mismatch_notes(info: dict[str, Any], weights: Path | None, device: str) -> list[str]:
    """What differs between a running worker and the weights/device asked for."""
    notes = []
    model = info.get("model") or {}
    if weights is not None:
        if model.get("sha256") != file_sha256(weights):
            notes.append(f"it uses other weights ({model.get('weights')})")
    elif not model.get("bundled"):
        notes.append(f"it uses {model.get('weights')}, not the bundled model")
    running = str(info.get("device", ""))
    if device != "auto" and running.split(":")[0] != device.split(":")[0]:
        notes.append(f"it runs on {running}, not {device}")
    return notes


def file_sha256(path: Path) -> str | None:
    import hashlib

    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def cmd_stop(args: argparse.Namespace) -> int:
    from worker.client import WorkerError, stop_worker

    try:
        pid = stop_worker(args.runtime_dir)
    except WorkerError as exc:
        print(f"lowlight worker stop: {exc}", file=sys.stderr)
        return 1
    print("no worker is running" if pid is None else f"worker stopped (pid {pid})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from worker.client import WorkerClient, WorkerError, worker_status
    from worker.protocol import LOG_FILE, state_dir

    status = worker_status(args.runtime_dir)
    info: dict[str, Any] = {}
    if status is not None:
        try:
            with WorkerClient(autostart=False, timeout=5.0, runtime_dir=args.runtime_dir) as c:
                info = c.hello()
        except WorkerError:
            status = None
    if status is None:
        if args.json:
            print(json.dumps({"running": False, "endpoint": None, "pid": None}))
        else:
            print("no worker is running (start one with `lowlight worker start`)")
        return EXIT_NOT_RUNNING
    if args.json:
        print(json.dumps({
            "running": True, **status,
            **{k: info.get(k) for k in ("device", "device_name", "device_note", "model",
                                        "uptime_s", "queue", "idle_timeout_s", "threads",
                                        "limits")},
            "log": str(state_dir(create=False) / LOG_FILE),
        }, indent=1))
        return 0
    print("worker running")
    _print_status(status, info)
    return 0


def _print_status(status: dict[str, Any], info: dict[str, Any]) -> None:
    from lowlight.progress import format_duration
    from worker.protocol import LOG_FILE, state_dir

    model = info.get("model") or {}
    device = str(info.get("device"))
    if info.get("device_name") and info.get("device_name") != "cpu":
        device += f" ({info['device_name']})"
    if info.get("device_note"):
        device += f"; not the GPU: {info['device_note']}"
    digest = str(model.get("sha256") or "")[:12]
    rows = [
        ("endpoint", status.get("endpoint")),
        ("pid", status.get("pid")),
        ("device", device),
        ("model", f"{model.get('weights')}{' (bundled)' if model.get('bundled') else ''}, "
                  f"sha256 {digest}…"),
        ("uptime", format_duration(float(info.get("uptime_s") or 0.0))),
        ("jobs", info.get("queue")),
        ("log", state_dir(create=False) / LOG_FILE),
    ]
    for name, value in rows:
        print(f"  {name:<9} {value}")


def cmd_log(args: argparse.Namespace) -> int:
    from worker.protocol import LOG_FILE, state_dir

    path = state_dir(create=False) / LOG_FILE
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(0, size - max(1, args.lines) * 400))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        print(f"the worker has not written a log yet ({path})", file=sys.stderr)
        return 1
    for line in lines[-max(1, args.lines):]:
        print(line)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from worker.server import ServerOptions, serve

    return serve(ServerOptions(
        weights=args.weights.expanduser().resolve() if args.weights else None,
        device=args.device, tcp=args.tcp, idle_timeout=args.idle_timeout,
        threads=args.threads, runtime_dir=args.runtime_dir, max_pixels=args.max_pixels,
        max_queue=args.max_queue, ready_fd=args.ready_fd,
    ))


def cmd_launch(args: argparse.Namespace) -> int:
    from worker.client import launch

    run_args = list(args.run_args)
    if run_args[:1] == ["--"]:
        run_args = run_args[1:]
    print(json.dumps(launch(run_args, args.timeout)), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m worker``: the ``worker`` subcommands on their own."""
    parser = argparse.ArgumentParser(prog="python -m worker",
                                     description="The Enhance Low Light background worker.")
    add_commands(parser)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
