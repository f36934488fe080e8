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
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (inputs are never replaced)")
    p.add_argument("--weights", type=Path, help="model weights (default: the bundled model)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where the network runs (default auto: GPU when available)")
    p.add_argument("--tile-size", type=int, default=None,
                   help="maximum tile side in pixels (default: from free memory)")
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
    ) -> NDArray[Any]:
        return self.enhancer.enhance(pixels, strength, progress)  # type: ignore[arg-type]

    def describe(self) -> str:
        return f"in-process on {self.enhancer.device}"


def run(args: argparse.Namespace, engine_factory: Callable[[], Engine] | None = None) -> int:
    from hybridnet.imageio import ImageFileError, read_image, write_image
    from lowlight.progress import ProgressBar

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
            if loaded.metadata.converted_from:
                print(f"{name}: note: {loaded.metadata.converted_from} image converted to "
                      f"{_layout_word(loaded.pixels)} for enhancement", file=sys.stderr)
            if engine is None:
                engine = (engine_factory or _default_engine(args))()
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

            result = engine.enhance(loaded.pixels, args.strength, progress)
            if single and tile_bar.total > 1:
                tile_bar.close()
            write_image(job.target, result, loaded.metadata, overwrite=args.overwrite)
            done.append(job.target)
        except (ImageFileError, FileExistsError) as exc:
            failures.append(str(exc) if str(exc).startswith(name) else f"{name}: {exc}")
            if not single:
                print(failures[-1], file=sys.stderr)
        except EngineError as exc:
            print(f"lowlight enhance: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # one bad file must not stop the others
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            if not single:
                print(failures[-1], file=sys.stderr)
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

        try:
            return InProcessEngine(args.weights, args.device, args.tile_size)
        except (WeightsError, ValueError) as exc:
            raise EngineError(str(exc)) from exc

    return make


def _layout_word(pixels: NDArray[Any]) -> str:
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    return {1: "gray", 2: "gray+alpha", 3: "RGB", 4: "RGBA"}[channels]
