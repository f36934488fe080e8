"""``lowlight eval``: every synthetic protocol and the real-photo checks, as a markdown report."""

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
        help="evaluate a model (synthetic protocols, real photos) into a markdown report",
        description=(
            "Evaluate a model at its default settings on the validation split under every "
            "synthetic protocol (the paper's Table II: gamma 3, noise sigma 0.01; a gamma "
            "sweep 2..4; camera-like underexposure by 1..5 stops with sensor noise, 8-bit "
            "and JPEG) against the dark input and two oracles fitted to the reference (best "
            "global gamma, best tone curve), plus the paper's baselines on Table II; then "
            "no-reference measures, contact sheets and full-resolution crops of real "
            "low-light photos, beside peer enhancers' outputs when given. Prints the tables "
            "and writes OUT/report.md."
        ),
    )
    p.add_argument("--weights", type=Path, help="weights file (default: the bundled model)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="root of the shared data (default $LOWLIGHT_DATA_ROOT or ../shared/data)")
    p.add_argument("--sets", nargs="*", default=None, metavar="DIR",
                   help="clean validation folders relative to the data root "
                        "(default: clean/BSDS500/test clean/McMaster18; none: skip)")
    p.add_argument("--protocols", nargs="+", default=None, metavar="NAME",
                   help="synthetic protocols: table2, gamma-2 .. gamma-4, camera-1EV .. "
                        "camera-5EV, camera-1EV-jpeg ..., or the groups gamma, camera, "
                        "camera-jpeg (default: all)")
    p.add_argument("--real", nargs="*", default=None, metavar="DIR",
                   help="real low-light folders relative to the data root (default: all; "
                        "none: skip)")
    p.add_argument("--peers", type=Path, default=None, metavar="DIR",
                   help="peer enhancers' outputs, DIR/<peer>/out_<folder>/<photo>.png (as "
                        "../shared/peers' runners write them), shown and measured beside ours")
    p.add_argument("--no-lime", action="store_true", help="leave LIME out of the real photos")
    p.add_argument("--limit", type=int, default=None, help="at most N images per folder")
    p.add_argument("--every", type=int, default=1, metavar="K",
                   help="every K-th validation image only (quick looks)")
    p.add_argument("--sheet-limit", type=int, default=None, metavar="N",
                   help="contact sheets show the first N photos of each real folder "
                        "(the measures still cover all)")
    p.add_argument("--thumb-height", type=int, default=180, help="contact sheet row height")
    p.add_argument("--baseline", type=Path, default=None, metavar="REPORT_DIR",
                   help="an earlier report folder: say which figures improved and which "
                        "got worse against it")
    p.add_argument("--out", type=Path, default=None, help="report folder (default reports/NAME)")
    p.add_argument("--title", default=None, help="report title")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from hybridnet import protocols
    from hybridnet.data import VALIDATION_SPLIT, default_data_root, list_images
    from hybridnet.enhancer import BUNDLED_WEIGHTS, Enhancer
    from hybridnet.errors import WeightsError
    from hybridnet.evaluate import Evaluation, evaluate_real, evaluate_synthetic
    from hybridnet.report import write_report
    from lowlight.progress import ProgressBar

    if args.threads:
        torch.set_num_threads(args.threads)
    root = args.data_root or default_data_root()
    try:
        chosen = protocols.resolve(args.protocols)
        enhancer = Enhancer(args.weights, device=args.device)
    except (WeightsError, ValueError) as exc:
        print(f"lowlight eval: {exc}", file=sys.stderr)
        return 2
    if args.every < 1:
        print("lowlight eval: --every must be at least 1", file=sys.stderr)
        return 2
    if args.baseline is not None and not args.baseline.is_dir():
        print(f"lowlight eval: --baseline {args.baseline} is not a report folder", file=sys.stderr)
        return 2
    weights = args.weights or BUNDLED_WEIGHTS
    out = args.out or Path("reports") / Path(weights).stem

    def gather(folders: list[str], every: int = 1) -> dict[str, list[Path]]:
        sets = {}
        for folder in folders:
            files = list_images([root / folder])[::every]
            sets[folder] = files[: args.limit] if args.limit else files
        return sets

    try:
        synthetic = gather(list(VALIDATION_SPLIT) if args.sets is None else args.sets,
                           args.every)
        real = gather(list(REAL_SETS) if args.real is None else args.real)
    except FileNotFoundError as exc:
        print(f"lowlight eval: {exc} (set --data-root)", file=sys.stderr)
        return 2
    ev = Evaluation(model="the bundled model (hybridnet/weights/hybridnet.safetensors)"
                    if args.weights is None else str(weights))
    if synthetic:
        bar = ProgressBar(sum(map(len, synthetic.values())), "synthetic",
                          enabled=not args.no_progress, unit="img")
        ev.synthetic = evaluate_synthetic(enhancer, synthetic, chosen,
                                          progress=lambda done, _t: bar.update(done - bar.done))
        bar.close()
    if real:
        bar = ProgressBar(sum(map(len, real.values())), "real", enabled=not args.no_progress,
                          unit="img")
        ev.real, ev.sheets = evaluate_real(
            enhancer, real, out / "sheets", peers=args.peers, with_lime=not args.no_lime,
            sheet_limit=args.sheet_limit, thumb_height=args.thumb_height,
            progress=lambda done, _t: bar.update(done - bar.done),
        )
        bar.close()
    report, tables = write_report(out, ev, args.title or f"Evaluation of {Path(weights).name}",
                                  baseline=args.baseline)
    print("\n".join(tables))
    print(report)
    return 0
