"""``lowlight batch IN_DIR OUT_DIR``: enhance a whole folder from scripts, resumably.

The same engine as the panel's Batch tab (:mod:`plugin.batch`): the input folder is never
written to (unless ``--allow-input-folder``), existing outputs are never overwritten,
outputs are written atomically, and running the same command again after Ctrl-C, a crash
or a killed worker continues where it stopped. Pixels go through the background worker
(started when none runs; ``--weights``/``--device`` are passed to a worker this command
starts).

Exit status: 0 when every file has its output (enhanced now or before), 1 when some
failed or the batch stopped (the summary lists each failure in one line), 2 on usage
errors (folders, pattern), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from plugin.batch import DEFAULT_PATTERN, FORMATS


def register(subparsers: Any) -> None:
    """Add ``batch`` to the ``lowlight`` command (see :mod:`lowlight.cli`)."""
    from lowlight.enhance_cmd import add_exposure_options, parse_strength
    from worker.cli import device_arg

    p = subparsers.add_parser(
        "batch",
        help="enhance every photo of a folder into another folder (resumable)",
        description=(
            "Enhance every photo (JPEG, PNG, TIFF, WebP, BMP) of IN_DIR into OUT_DIR, keeping "
            "format, bit depth, EXIF and ICC profile. Existing outputs are never overwritten; "
            "run the same command again to continue a stopped batch."
        ),
    )
    p.add_argument("input_dir", type=Path, metavar="IN_DIR", help="folder of photos")
    p.add_argument("output_dir", type=Path, metavar="OUT_DIR",
                   help="where the results go (created when missing)")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="include sub-folders (mirrored in OUT_DIR)")
    p.add_argument("--strength", type=parse_strength, default=1.0, metavar="S|auto",
                   help="0..1 or 0%%..100%%, or 'auto' from each photo's exposure (default 1)")
    add_exposure_options(p, "each photo")
    p.add_argument("--format", dest="output_format", choices=list(FORMATS), default="same",
                   help="output format (default: same as each input)")
    p.add_argument("--pattern", default=DEFAULT_PATTERN,
                   help="output name without suffix; {name} is the input's name, {ext} its "
                        "suffix, {strength} the strength (default %(default)s)")
    p.add_argument("--allow-input-folder", action="store_true",
                   help="allow OUT_DIR to be IN_DIR or inside it")
    p.add_argument("--weights", type=Path, help="model weights (default: the bundled model)")
    p.add_argument("--device", type=device_arg, default="auto", metavar="auto|cpu|cuda",
                   help="where a worker started by this command runs (default auto)")
    p.add_argument("--tile-size", type=int, default=None,
                   help="maximum tile side in pixels (default: from free memory)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lowlight.progress import ProgressBar
    from plugin.batch import BatchError, BatchOptions, BatchProgress, BatchRunner, plan

    if args.tile_size is not None and args.tile_size < 136:
        print("lowlight batch: --tile-size must be at least 136 pixels", file=sys.stderr)
        return 2
    if args.weights is not None and not args.weights.is_file():
        print(f"lowlight batch: the weights file {args.weights} does not exist; check the path",
              file=sys.stderr)
        return 2
    options = BatchOptions(
        input_dir=args.input_dir, output_dir=args.output_dir, recursive=args.recursive,
        strength=args.strength, output_format=args.output_format, pattern=args.pattern,
        allow_input_folder=args.allow_input_folder, tile_size=args.tile_size,
        brightness=args.brightness,
    )
    try:
        the_plan = plan(options)
    except BatchError as exc:
        print(f"lowlight batch: {exc}", file=sys.stderr)
        return 2
    if the_plan.total == 0:
        print(f"lowlight batch: no photos in {args.input_dir} (.jpg, .png, .tif, .webp, .bmp"
              f"{'' if args.recursive else '; --recursive includes sub-folders'})",
              file=sys.stderr)
        return 0
    skipped = len(the_plan.done) + len(the_plan.existing) + len(the_plan.refused)
    if the_plan.resumed and not args.quiet and the_plan.done:
        print(f"lowlight batch: resuming: {len(the_plan.done)} of {the_plan.total} already "
              "done", file=sys.stderr)
    bar = ProgressBar(the_plan.total, "batch", unit="file", enabled=not args.quiet,
                      initial=skipped)

    def progress(p: BatchProgress) -> None:
        info = p.current.name if p.current is not None else ""
        if p.tile is not None:
            info += f" (tile {p.tile[0]}/{p.tile[1]})"
        if p.paused:
            info = "paused"
        bar.update(p.done - bar.done, info=info)

    start_args = ["--device", args.device]
    if args.weights is not None:
        start_args += ["--weights", str(args.weights.resolve())]
    runner = BatchRunner(options, progress=progress, start_args=start_args)
    try:
        summary = runner.run(the_plan)
    except BatchError as exc:
        print(f"lowlight batch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        bar.close()
        print("lowlight batch: interrupted; run the same command again to continue",
              file=sys.stderr)
        return 130
    bar.close()
    for note in summary.notices:
        print(f"lowlight batch: note: {note}", file=sys.stderr)
    if summary.retried:
        print(f"lowlight batch: note: the worker stopped during the batch and was restarted "
              f"({summary.retried} time{'s' if summary.retried > 1 else ''})", file=sys.stderr)
    print(f"lowlight batch: {summary.headline()}", file=sys.stderr)
    for failure in summary.failures:
        print(f"  - {failure}", file=sys.stderr)
    return 0 if summary.complete else 1
