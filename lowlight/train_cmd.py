"""``lowlight train``: train the hybrid network (paper defaults, reproducible, resumable)."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hybridnet.train import TrainConfig


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the network (paper defaults; resumable)",
        description=(
            "Train the hybrid network as in Sec. III-D of the paper: Adam (0.9, 0.999), "
            "lr 1e-4 halved every 8,000 iterations, 20,000 iterations, batch 10 of 128x128 "
            "patches, weight decay 1e-5, loss of Eq. (7). Synthetic pairs are made from "
            "clean photos (--data or the shared data split); --pairs uses real pairs. "
            "Ctrl-C saves a checkpoint; --resume continues exactly."
        ),
    )
    p.add_argument("--out", required=True, type=Path, help="run folder (created)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out with its stored options (give only "
                        "--iterations to lengthen it)")
    p.add_argument("--data", type=Path, action="append", metavar="DIR",
                   help="folder of clean photos (repeatable); default: the training split "
                        "of --data-root")
    p.add_argument("--data-root", type=Path, default=None,
                   help="root of the shared data (default $LOWLIGHT_DATA_ROOT or ../shared/data)")
    p.add_argument("--pairs", nargs=2, type=Path, metavar=("LOW_DIR", "HIGH_DIR"),
                   help="real pairs matched by file name instead of synthetic ones")
    # The options below that set a TrainConfig field default to None ("not given"): a new
    # run takes TrainConfig's default, a resumed one the value stored with the run.
    p.add_argument("--degradation", choices=["gamma", "realistic", "mix", "blind"],
                   help="how synthetic low-light inputs are made: blind (default; camera-like "
                        "and gamma darkenings behind the exposure curve), or for a model "
                        "config without the exposure head gamma (the paper's), realistic, mix")
    p.add_argument("--mix-probability", type=float,
                   help="share of realistic pairs with --degradation mix (default 0.5)")
    p.add_argument("--camera-probability", type=float,
                   help="share of camera-like darkenings with --degradation blind (default 0.6)")
    p.add_argument("--ev-jitter", type=float, metavar="STOPS",
                   help="blind: move each input's exposure by up to STOPS and the target "
                        "with it, so the network keeps the exposure it is given (default 0)")
    p.add_argument("--optimizer", choices=["adam", "adamw"],
                   help="adamw (default: decoupled weight decay) or adam (the paper's)")
    p.add_argument("--loss", choices=["mse", "mse+per", "mse+adv", "total"],
                   help="terms of Eq. (7) (Table II ablation); default total")
    p.add_argument("--ssim-weight", type=float, metavar="W",
                   help="add W * (1 - SSIM) to the loss (not in the paper; default 0, off)")
    p.add_argument("--gamma-reference", type=float, metavar="G",
                   help="tell the network the darkening: gamma-darkened inputs are "
                        "normalised to gamma G before it sees them (not in the paper; "
                        "default: off, the network guesses the darkening)")
    for option, kind, default in _CONFIG_OPTIONS:
        p.add_argument(option, type=kind, help=f"default {default:g}")
    p.add_argument("--model-config", type=Path, metavar="JSON",
                   help="HybridNetConfig as JSON (default: the default config)")
    p.add_argument("--vgg-weights", type=Path, help="VGG-16 weights for the perceptual loss")
    p.add_argument("--init-weights", type=Path,
                   help="start from these generator weights (fine-tuning) instead of random")
    p.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda")
    p.add_argument("--workers", type=int, default=None, help="data loader processes")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--time-limit", type=_duration, metavar="DURATION",
                   help="stop after this much training (e.g. 90m, 2h, 1h30m, 600s): the "
                        "checkpoint and model.safetensors hold the weights so far, "
                        "--resume goes on")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


#: TrainConfig fields set by a plain option: (option, type, the dataclass default). The
#: defaults are written out, not read from TrainConfig, because hybridnet.train imports
#: torch and registering the CLI must not; a test keeps them equal.
_CONFIG_OPTIONS: tuple[tuple[str, type, float], ...] = (
    ("--iterations", int, 20_000),
    ("--batch-size", int, 10),
    ("--patch-size", int, 128),
    ("--lr", float, 1e-4),
    ("--lr-step", int, 8_000),
    ("--lr-decay", float, 0.5),
    ("--weight-decay", float, 1e-5),
    ("--seed", int, 0),
    ("--checkpoint-every", int, 500),
    ("--log-every", int, 50),
)
_CONFIG_FIELDS = ("degradation", "mix_probability", "camera_probability", "ev_jitter",
                  "optimizer", "loss", "ssim_weight", "gamma_reference",
                  *(option[2:].replace("-", "_") for option, _, _ in _CONFIG_OPTIONS))


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def _duration(text: str) -> float:
    """Seconds in ``"90m"``, ``"2h"``, ``"1h30m"``, ``"600s"`` or ``"600"``."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; write it like 90m, 2h, 1h30m or 600s"
        )
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise argparse.ArgumentTypeError(f"the time limit must be above zero, got {text!r}")
    return total


def _stored_config(run_dir: Path) -> TrainConfig | None:
    """The options a run in ``run_dir`` was started with (None when there is none to read;
    the trainer then says what is missing)."""
    from hybridnet.train import TrainConfig

    path = run_dir / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        return TrainConfig.from_json(text)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"--resume: cannot read {path}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    import torch

    from hybridnet.config import HybridNetConfig
    from hybridnet.data import default_data_root
    from hybridnet.errors import WeightsError
    from hybridnet.train import TrainConfig, Trainer, default_train_dirs

    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        stored = _stored_config(args.out) if args.resume else None
    except ValueError as exc:
        print(f"lowlight train: {exc}", file=sys.stderr)
        return 2
    given: dict[str, Any] = {
        name: getattr(args, name) for name in _CONFIG_FIELDS if getattr(args, name) is not None
    }
    if args.model_config is not None:
        given["model"] = HybridNetConfig.from_json(
            args.model_config.read_text(encoding="utf-8"))
    if args.pairs:
        given["train_dirs"] = ()
        given["pairs"] = (str(args.pairs[0].resolve()), str(args.pairs[1].resolve()))
    elif args.data or args.data_root or stored is None:
        given["pairs"] = None
        given["train_dirs"] = (
            tuple(str(d.resolve()) for d in args.data) if args.data
            else default_train_dirs(args.data_root or default_data_root())
        )
    if args.vgg_weights:
        given["vgg_weights"] = str(args.vgg_weights)
    if args.init_weights:
        given["init_weights"] = str(args.init_weights.resolve())
    try:
        # A resumed run keeps its stored options; what is given is compared with them
        # (Trainer refuses any change but --iterations).
        config = replace(stored, **given) if stored is not None else TrainConfig(**given)
        trainer = Trainer(config, args.out, device=args.device, resume=args.resume,
                          workers=args.workers, progress=not args.no_progress)
    except (ValueError, FileNotFoundError, FileExistsError, json.JSONDecodeError,
            WeightsError) as exc:
        print(f"lowlight train: {exc}", file=sys.stderr)
        return 2
    try:
        result = trainer.run(time_limit=args.time_limit)
    except KeyboardInterrupt:
        print(f"lowlight train: interrupted; resume with: lowlight train --out {args.out} "
              "--resume", file=sys.stderr)
        return 130
    finally:
        trainer.close()
    print(result.model_path)
    return 0
