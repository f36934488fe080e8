"""``lowlight enhance``: enhance photos on disk, keeping format, bit depth and metadata.

Rules a user can rely on:

* an input is never overwritten, even with ``--overwrite``;
* an existing output is never overwritten unless ``--overwrite`` is given;
* outputs are written atomically (a crash never leaves half a file);
* the default output is ``NAME_enhanced.EXT`` beside the input; ``--output-dir DIR``
  writes ``DIR/NAME.EXT``; ``-o FILE`` names the output of a single input (its suffix
  picks the format);
* every failure is one line naming the file and what to do; the summary lists them;
* exit status 0 when every file was enhanced, 1 when some failed, 2 on usage errors.

Where the network runs: by default in the background worker (:mod:`worker`), started
when none runs and left running for the next command, so repeated runs skip loading
torch and the model; ``--no-worker`` runs it in this process. Both give bit-identical
pixels (same weights, device and CPU thread count; a worker this command starts uses
torch's default thread count, like this process). ``--weights``/``--device`` are passed
to a worker this command starts; when a worker already runs with other weights (compared
by SHA-256; the bundled model by default) or on another device than an explicit
``--device``, this command says so and enhances in this process instead, so the output
is always that of the weights and device asked for. A worker that cannot be started
(socket, folder, crash) is reported in one note and the command goes on in this process;
weights that cannot be loaded are an error either way. ``--tile-size`` is sent with each
request.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from numpy.typing import NDArray

StrengthArg = float | str


class Engine(Protocol):
    """What runs the network: in this process, or the background worker."""

    def enhance(
        self,
        pixels: NDArray[Any],
        strength: StrengthArg,
        progress: Callable[[int, int], None] | None,
        brightness: float = 0.0,
    ) -> NDArray[Any]: ...

    def describe(self) -> str: ...


def parse_strength(text: str) -> StrengthArg:
    """``auto``, a fraction ``0.8`` or a percentage ``80%``."""
    value = text.strip().lower()
    if value == "auto":
        return "auto"
    try:
        s = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"strength must be 'auto', a number from 0 to 1, or a percentage; got {text!r}"
        ) from None
    if not 0.0 <= s <= 1.0:
        raise argparse.ArgumentTypeError(
            f"strength must be between 0 and 1 (0%..100%); got {text!r}"
        )
    return s


def parse_ev(text: str) -> float:
    """Stops from the automatic exposure, "+1", "-0.5", "1.5EV" (-2..2), as the brightness
    that carries them (:func:`hybridnet.contract.brightness_to_ev`: 2 stops per unit)."""
    cleaned = text.strip().upper().removesuffix("EV").strip()
    try:
        ev = float(cleaned)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--ev must be a number of stops such as +1 or -0.5; got {text!r}") from None
    if not -2.0 <= ev <= 2.0:
        raise argparse.ArgumentTypeError(
            f"--ev must be between -2 (darker) and +2 (brighter) stops; got {text!r}")
    return ev / 2.0


def add_exposure_options(p: argparse.ArgumentParser, each: str = "the photo") -> None:
    """``--brightness B`` and its photographic twin ``--ev STOPS`` (one or the other)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--brightness", type=parse_brightness, default=0.0, metavar="B",
                       help=f"-1..1 from the automatic exposure of {each} (default 0): "
                            "+0.5 is one stop (EV) brighter, -0.5 one darker, +-1 two "
                            "(older weights files: how dark the model takes it to be); "
                            "unlike --strength it can lift")
    group.add_argument("--ev", dest="brightness", type=parse_ev, metavar="STOPS",
                       help="the same in stops from the automatic exposure: --ev +1 is one "
                            "stop brighter (= --brightness 0.5), -2..+2")


def parse_brightness(text: str) -> float:
    """A number from -1 (darker) to 1 (brighter)."""
    try:
        b = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"brightness must be a number from -1 (darker) to 1 (brighter); got {text!r}"
        ) from None
    if not -1.0 <= b <= 1.0:
        raise argparse.ArgumentTypeError(
            f"brightness must be between -1 (darker) and 1 (brighter); got {text!r}"
        )
    return b


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "enhance",
        help="enhance photos (JPEG, PNG, TIFF, WebP, BMP), keeping format and metadata",
        description=(
            "Enhance low-light photos with the bundled model. Outputs keep the format, bit "
            "depth, EXIF, ICC profile and DPI of their input. Inputs are never overwritten."
        ),
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files")
    out = p.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", type=Path, metavar="OUT",
                     help="output file (one input only); its suffix picks the format")
    out.add_argument("--output-dir", type=Path, metavar="DIR",
                     help="write DIR/NAME.EXT for each input (DIR is created)")
    p.add_argument("--strength", type=parse_strength, default=1.0, metavar="S|auto",
                   help="0..1 or 0%%..100%% blend with the original, or 'auto' from the "
                        "photo's exposure (default 1)")
    add_exposure_options(p)
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (inputs are never replaced)")
    p.add_argument("--weights", type=Path, help="model weights (default: the bundled model)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where the network runs (default auto: GPU when available)")
    p.add_argument("--tile-size", type=int, default=None,
                   help="maximum tile side in pixels (default: from free memory)")
    p.add_argument("--no-worker", action="store_true",
                   help="run the network in this process instead of the background worker")
    p.add_argument("--suffix", default="_enhanced", help="added to NAME for default outputs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


@dataclass
class Job:
    source: Path
    target: Path


def plan_outputs(args: argparse.Namespace) -> tuple[list[Job], list[str]]:
    """Where each input goes, and the inputs refused before any work (one line each)."""
    jobs: list[Job] = []
    problems: list[str] = []
    seen: dict[Path, Path] = {}
    inputs = [p.resolve() for p in args.inputs]
    for given in args.inputs:
        if args.output is not None:
            target = args.output
        elif args.output_dir is not None:
            target = args.output_dir / given.name
        else:
            target = given.with_name(f"{given.stem}{args.suffix}{given.suffix}")
        resolved = target.resolve()
        if resolved in inputs:
            problems.append(f"{given}: the output {target} is an input file; it is never "
                            "overwritten (choose another -o or --output-dir)")
            continue
        if resolved in seen:
            problems.append(f"{given}: the output {target} is also the output of "
                            f"{seen[resolved]}; use --output-dir with distinct names")
            continue
        seen[resolved] = given
        jobs.append(Job(given, target))
    return jobs, problems


class InProcessEngine:
    """The network in this process (loaded on first use)."""

    def __init__(self, weights: Path | None, device: str, tile_size: int | None) -> None:
        from hybridnet.enhancer import Enhancer

        self.enhancer = Enhancer(weights, device=device, tile_size=tile_size)

    def enhance(
        self,
        pixels: NDArray[Any],
        strength: StrengthArg,
        progress: Callable[[int, int], None] | None,
        brightness: float = 0.0,
    ) -> NDArray[Any]:
        return self.enhancer.enhance(pixels, strength, progress,  # type: ignore[arg-type]
                                     brightness=brightness)

    def describe(self) -> str:
        return f"in-process on {self.enhancer.device}"


class WorkerMismatch(Exception):
    """The running worker has other weights or another device than asked for."""


class WorkerEngine:
    """The background worker through :mod:`worker.client` (started when none runs).

    Raises:
        worker.client.WorkerError: the worker cannot be started or reached.
        WorkerMismatch: a running worker has other weights/device than asked for.
    """

    def __init__(self, weights: Path | None, device: str, tile_size: int | None) -> None:
        from worker.cli import mismatch_notes
        from worker.client import WorkerClient

        start_args = ["--device", device]
        if weights is not None:
            start_args += ["--weights", str(weights.resolve())]
        self.client = WorkerClient(autostart=True, start_args=start_args)
        self.tile_size = tile_size
        try:
            self.info = self.client.hello()
            notes = mismatch_notes(self.info, weights, device)
        except BaseException:
            self.client.close()
            raise
        if notes:
            self.client.close()
            raise WorkerMismatch("; ".join(notes))

    def enhance(
        self,
        pixels: NDArray[Any],
        strength: StrengthArg,
        progress: Callable[[int, int], None] | None,
        brightness: float = 0.0,
    ) -> NDArray[Any]:
        told: list[bool] = []

        def waiting(_seconds: float) -> None:
            if not told:  # once per photo: the queue is another program's, not an error
                told.append(True)
                print("lowlight enhance: the worker is busy with other images; waiting for "
                      "a turn", file=sys.stderr)

        out = self.client.enhance(pixels, strength,  # type: ignore[arg-type]
                                  progress=progress, tile_size=self.tile_size,
                                  brightness=brightness, on_wait=waiting)
        for notice in self.client.notices:
            print(f"lowlight enhance: note: {notice}", file=sys.stderr)
        return out

    def describe(self) -> str:
        return f"background worker (pid {self.info.get('pid')}) on {self.info.get('device')}"

    def close(self) -> None:
        self.client.close()


def run(args: argparse.Namespace, engine_factory: Callable[[], Engine] | None = None) -> int:
    if args.output is not None and len(args.inputs) > 1:
        print("lowlight enhance: -o/--output takes one input; use --output-dir for several",
              file=sys.stderr)
        return 2
    if args.tile_size is not None and args.tile_size < 136:
        print("lowlight enhance: --tile-size must be at least 136 pixels", file=sys.stderr)
        return 2
    if args.output_dir is not None:
        try:
            args.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"lowlight enhance: cannot create the output folder {args.output_dir}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return 2
    jobs, failures = plan_outputs(args)
    opened: list[Engine] = []
    try:
        return _enhance_all(args, jobs, failures, engine_factory, opened)
    finally:
        for engine in opened:  # the worker connection (the worker itself keeps running)
            close = getattr(engine, "close", None)
            if close is not None:
                close()


def _enhance_all(
    args: argparse.Namespace,
    jobs: list[Job],
    failures: list[str],
    engine_factory: Callable[[], Engine] | None,
    opened: list[Engine],
) -> int:
    from hybridnet.imageio import ImageFileError, read_image, write_image
    from lowlight.progress import ProgressBar
    from worker.client import WorkerError

    engine: Engine | None = None
    done: list[Path] = []
    single = len(jobs) == 1
    files_bar = ProgressBar(len(jobs), "files", enabled=not args.quiet and len(jobs) > 1,
                            unit="file")
    for job in jobs:
        name = str(job.source)
        try:
            if job.target.exists() and not args.overwrite:
                raise FileExistsError(f"{name}: the output {job.target} already exists; "
                                      "pass --overwrite to replace it")
            loaded = read_image(job.source)
            for note in loaded.notes:
                print(f"{name}: note: {note}", file=sys.stderr)
            if engine is None:
                engine = (engine_factory or _default_engine(args))()
                opened.append(engine)
            tile_bar = ProgressBar(0, job.source.name, enabled=single and not args.quiet,
                                   unit="tile")

            def progress(done_tiles: int, total: int, bar: ProgressBar = tile_bar,
                         label: str = job.source.name) -> None:
                if args.quiet or total <= 1:
                    return
                if single:
                    bar.total = total
                    bar.update(done_tiles - bar.done)
                else:
                    files_bar.update(0, info=f"{label}: tile {done_tiles}/{total}")

            result = engine.enhance(loaded.pixels, args.strength, progress,
                                    brightness=args.brightness)
            if single and tile_bar.total > 1:
                tile_bar.close()
            write_image(job.target, result, loaded.metadata, overwrite=args.overwrite)
            done.append(job.target)
        except (ImageFileError, FileExistsError) as exc:
            failures.append(str(exc) if str(exc).startswith(name) else f"{name}: {exc}")
        except EngineError as exc:
            print(f"lowlight enhance: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # one bad file must not stop the others
            failures.append(f"{name}: {exc}" if isinstance(exc, WorkerError) else
                            f"{name}: unexpected error ({type(exc).__name__}: {exc}); "
                            "please report it with this line")
        files_bar.update(1, info=job.source.name)
    if files_bar.enabled:
        files_bar.close()
    total = len(args.inputs)
    for path in done:
        print(path)
    if failures:
        print(f"lowlight enhance: {len(done)} of {total} enhanced, {len(failures)} failed:",
              file=sys.stderr)
        for line in failures:
            print(f"  - {line}", file=sys.stderr)
        return 1
    if total > 1 and not args.quiet:
        print(f"lowlight enhance: {len(done)} of {total} enhanced", file=sys.stderr)
    return 0


class EngineError(RuntimeError):
    """The network could not be set up at all (no weights, no such device): a usage error."""


def _default_engine(args: argparse.Namespace) -> Callable[[], Engine]:
    def make() -> Engine:
        from hybridnet.errors import WeightsError

        if not getattr(args, "no_worker", False):
            engine = _worker_engine(args)
            if engine is not None:
                return engine
        try:
            return InProcessEngine(args.weights, args.device, args.tile_size)
        except (WeightsError, ValueError) as exc:
            raise EngineError(str(exc)) from exc

    return make


def _worker_engine(args: argparse.Namespace) -> Engine | None:
    """The worker, or ``None`` (after one note) when this process should do the work."""
    from worker.client import WorkerError

    if args.weights is not None and not args.weights.is_file():
        raise EngineError(f"weights file {args.weights} does not exist; check the path")
    try:
        return WorkerEngine(args.weights, args.device, args.tile_size)
    except WorkerMismatch as exc:
        print(f"lowlight enhance: note: the running worker does not match: {exc}; enhancing "
              "in this process instead (`lowlight worker stop` lets the next run start a "
              "matching worker)", file=sys.stderr)
    except WorkerError as exc:
        if exc.code == "no_model":  # this process could not load the weights either
            raise EngineError(str(exc)) from exc
        print(f"lowlight enhance: note: {exc}; enhancing in this process instead "
              "(--no-worker skips the worker)", file=sys.stderr)
    return None
