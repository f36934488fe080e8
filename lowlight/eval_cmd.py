"""``lowlight eval``: Table II/III evaluation and real-photo checks, as a markdown report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

REAL_SETS = (
    "lowlight/DICM",
    "lowlight/LIME",
    "lowlight/LOL_eval15_lowonly/low",
    "lowlight/SCI_testsamples/easy",
    "lowlight/SCI_testsamples/medium",
    "lowlight/SCI_testsamples/difficult",
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model (Table II/III protocol, real photos) into a markdown report",
        description=(
            "Evaluate a model as the paper's Tables II and III do (gamma 3, noise sigma 0.01, "
            "8-bit) on the validation split, against the dark input, inverse gamma, "
            "histogram equalisation, LIME and the best global gamma; then no-reference "
            "checks and contact sheets on real low-light photos. Writes OUT/report.md."
        ),
    )
    p.add_argument("--weights", type=Path, help="weights file (default: the bundled model)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="root of the shared data (default $LOWLIGHT_DATA_ROOT or ../shared/data)")
    p.add_argument("--sets", nargs="*", default=None, metavar="DIR",
                   help="clean validation folders relative to the data root "
                        "(default: clean/BSDS500/test clean/McMaster18)")
    p.add_argument("--real", nargs="*", default=None, metavar="DIR",
                   help="real low-light folders relative to the data root (default: all)")
    p.add_argument("--limit", type=int, default=None, help="at most N images per folder")
    p.add_argument("--sheet-limit", type=int, default=None, metavar="N",
                   help="contact sheets show the first N photos of each real folder "
                        "(the measures still cover all)")
    p.add_argument("--thumb-height", type=int, default=180, help="contact sheet row height")
    p.add_argument("--out", type=Path, default=None, help="report folder (default reports/NAME)")
    p.add_argument("--title", default=None, help="report title")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from hybridnet.data import VALIDATION_SPLIT, default_data_root, list_images
    from hybridnet.enhancer import BUNDLED_WEIGHTS, Enhancer
    from hybridnet.errors import WeightsError
    from hybridnet.evaluate import Evaluation, evaluate_real, evaluate_synthetic, write_report

    if args.threads:
        torch.set_num_threads(args.threads)
    root = args.data_root or default_data_root()
    try:
        enhancer = Enhancer(args.weights, device=args.device)
    except (WeightsError, ValueError) as exc:
        print(f"lowlight eval: {exc}", file=sys.stderr)
        return 2
    weights = args.weights or BUNDLED_WEIGHTS
    out = args.out or Path("reports") / Path(weights).stem
    progress = not args.no_progress

    def gather(folders: list[str]) -> dict[str, list[Path]]:
        sets = {}
        for folder in folders:
            files = list_images([root / folder])
            sets[folder] = files[: args.limit] if args.limit else files
        return sets

    try:
        synthetic = gather(list(VALIDATION_SPLIT) if args.sets is None else args.sets)
        real = gather(list(REAL_SETS) if args.real is None else args.real)
    except FileNotFoundError as exc:
        print(f"lowlight eval: {exc} (set --data-root)", file=sys.stderr)
        return 2
    bundled = args.weights is None
    ev = Evaluation(model="the bundled model (hybridnet/weights/hybridnet.safetensors)"
                    if bundled else str(weights))
    if synthetic:
        ev.synthetic = evaluate_synthetic(enhancer, synthetic, progress=progress)
    if real:
        ev.real, ev.sheets = evaluate_real(
            enhancer, real, out / "sheets", progress=progress, sheet_limit=args.sheet_limit,
            thumb_height=args.thumb_height,
        )
    report = write_report(out, ev, args.title or f"Evaluation of {Path(weights).name}")
    print(report)
    return 0
