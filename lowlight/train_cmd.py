"""``lowlight train``: train the hybrid network (paper defaults, reproducible, resumable)."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any


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
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--data", type=Path, action="append", metavar="DIR",
                   help="folder of clean photos (repeatable); default: the training split "
                        "of --data-root")
    p.add_argument("--data-root", type=Path, default=None,
                   help="root of the shared data (default $LOWLIGHT_DATA_ROOT or ../shared/data)")
    p.add_argument("--pairs", nargs=2, type=Path, metavar=("LOW_DIR", "HIGH_DIR"),
                   help="real pairs matched by file name instead of synthetic ones")
    p.add_argument("--degradation", choices=["gamma", "realistic", "mix"], default="gamma",
                   help="how synthetic low-light inputs are made (default: gamma, the paper's)")
    p.add_argument("--mix-probability", type=float, default=0.5,
                   help="share of realistic pairs with --degradation mix")
    p.add_argument("--loss", choices=["mse", "mse+per", "mse+adv", "total"], default="total",
                   help="terms of Eq. (7) (Table II ablation); default total")
    p.add_argument("--ssim-weight", type=float, default=0.0, metavar="W",
                   help="add W * (1 - SSIM) to the loss (not in the paper; default 0, off)")
    p.add_argument("--iterations", type=int, default=20_000)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--patch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lr-step", type=int, default=8_000)
    p.add_argument("--lr-decay", type=float, default=0.5)
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--log-every", type=int, default=50)
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


def run(args: argparse.Namespace) -> int:
    import torch

    from hybridnet.config import HybridNetConfig
    from hybridnet.data import default_data_root
    from hybridnet.errors import WeightsError
    from hybridnet.train import TrainConfig, Trainer, default_train_dirs

    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    model_cfg = HybridNetConfig()
    if args.model_config is not None:
        model_cfg = HybridNetConfig.from_json(args.model_config.read_text(encoding="utf-8"))
    if args.pairs:
        train_dirs: tuple[str, ...] = ()
        pairs: tuple[str, str] | None = (str(args.pairs[0].resolve()),
                                         str(args.pairs[1].resolve()))
    else:
        pairs = None
        if args.data:
            train_dirs = tuple(str(d.resolve()) for d in args.data)
        else:
            train_dirs = default_train_dirs(args.data_root or default_data_root())
    try:
        config = TrainConfig(
            model=model_cfg,
            iterations=args.iterations,
            batch_size=args.batch_size,
            patch_size=args.patch_size,
            lr=args.lr,
            lr_step=args.lr_step,
            lr_decay=args.lr_decay,
            weight_decay=args.weight_decay,
            loss=args.loss,
            ssim_weight=args.ssim_weight,
            degradation=args.degradation,
            mix_probability=args.mix_probability,
            train_dirs=train_dirs,
            pairs=pairs,
            seed=args.seed,
            checkpoint_every=args.checkpoint_every,
            log_every=args.log_every,
            vgg_weights=str(args.vgg_weights) if args.vgg_weights else None,
            init_weights=str(args.init_weights.resolve()) if args.init_weights else None,
        )
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
              "--resume (and the same options)", file=sys.stderr)
        return 130
    finally:
        trainer.close()
    print(result.model_path)
    return 0
