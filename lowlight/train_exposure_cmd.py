"""``lowlight train-exposure``: fit a network's exposure estimator, write the weights file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train-exposure",
        help="train the exposure estimator of a trained network (minutes on a CPU)",
        description=(
            "The exposure estimator sees only a thumbnail of the whole photo, so it is "
            "trained apart from the network (hybridnet/train_exposure.py): thumbnails of the "
            "training photos under the blind darkenings (camera-like and gamma), loss: the "
            "estimated curve's result against the clean thumbnail. Reads a network (a run's "
            "checkpoint.pt or model.safetensors), puts the trained estimator into it and "
            "writes OUT (safetensors), printing the median exposure error on the "
            "validation photos."
        ),
    )
    p.add_argument("network", type=Path, help="RUN/checkpoint.pt or a .safetensors file")
    p.add_argument("--out", type=Path, required=True, help="weights file to write (new)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="root of the shared data (default $LOWLIGHT_DATA_ROOT or ../shared/data)")
    p.add_argument("--samples", type=int, default=20000, help="darkened thumbnails (20000)")
    p.add_argument("--steps", type=int, default=8000, help="Adam steps (8000)")
    p.add_argument("--camera-probability", type=float, default=0.6, metavar="P",
                   help="share of camera-like darkenings among the training thumbnails, the "
                        "rest the paper's gamma (default 0.6, as the network's training)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--estimator", type=Path, default=None, metavar="WEIGHTS",
                   help="take the trained estimator from this weights file instead of "
                        "training one (the estimator does not depend on the network, so one "
                        "trained beside a long run can be put into its final weights)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(handler=run)


#: Header keys the estimator's training writes (replaced when another estimator goes in).
ESTIMATOR_KEYS = ("estimator_", "median |EV error|")


def _load_network(path: Path) -> tuple[Any, str, dict[str, str]]:
    import torch

    from hybridnet import HybridNet, load_model
    from hybridnet.train import TrainConfig
    from hybridnet.weights_io import flush_tiny, read_metadata

    if path.suffix == ".pt":
        state = torch.load(path, map_location="cpu", weights_only=True)
        config = TrainConfig.from_json(state["train_config"]).model
        model = HybridNet(config)
        model.load_state_dict(flush_tiny(state["model"]))
        provenance = {"train_config": str(state["train_config"]),
                      "iterations": str(int(state["iteration"]))}
        return model.eval(), f"{path} (iteration {int(state['iteration'])})", provenance
    reserved = {"format", "format_version", "config", "hybridnet_version"}
    kept = {k: v for k, v in read_metadata(path).items()
            if k not in reserved and not k.startswith(ESTIMATOR_KEYS)}
    return load_model(path), str(path), kept


def run(args: argparse.Namespace) -> int:
    import torch

    from hybridnet.blind_pairs import BlindDarkenings
    from hybridnet.data import (
        TRAIN_SPLIT,
        VALIDATION_SPLIT,
        default_data_root,
        list_images,
        load_rgb8,
    )
    from hybridnet.errors import WeightsError
    from hybridnet.train_exposure import fit_into_network
    from hybridnet.weights_io import load_model, read_metadata, save_model

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.out.exists() and not args.overwrite:
        print(f"lowlight train-exposure: {args.out} exists; pass --overwrite or choose "
              "another --out", file=sys.stderr)
        return 2
    root = args.data_root or default_data_root()
    try:
        network, source, provenance = _load_network(args.network)
        train, val = [], []
        if args.estimator is None:
            train = [load_rgb8(p) for p in list_images([root / f for f in TRAIN_SPLIT])]
            val = [load_rgb8(p) for p in list_images([root / f for f in VALIDATION_SPLIT])]
    except (WeightsError, FileNotFoundError, KeyError, ValueError, RuntimeError) as exc:
        print(f"lowlight train-exposure: {exc}", file=sys.stderr)
        return 2
    if network.exposure is None:
        print(f"lowlight train-exposure: {args.network} has no exposure estimator "
              "(its config has exposure off)", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    if args.estimator is not None:
        try:
            donor = load_model(args.estimator)
            if donor.exposure is None:
                raise WeightsError(f"{args.estimator} has no exposure estimator")
            network.exposure.load_state_dict(donor.exposure.state_dict())
        except (WeightsError, RuntimeError) as exc:
            print(f"lowlight train-exposure: --estimator: {exc}", file=sys.stderr)
            return 2
        meta = {**provenance, "network": source, "estimator_from": str(args.estimator),
                **{k: v for k, v in read_metadata(args.estimator).items()
                   if k.startswith(ESTIMATOR_KEYS)}}
        report: dict[str, float] = {}
    else:
        try:
            darkenings = BlindDarkenings(camera_probability=args.camera_probability)
        except ValueError as exc:
            print(f"lowlight train-exposure: {exc}", file=sys.stderr)
            return 2
        network, report = fit_into_network(network, train, val, samples=args.samples,
                                           steps=args.steps, seed=args.seed,
                                           darkenings=darkenings)
        meta = {**provenance, "network": source, "estimator_samples": str(args.samples),
                "estimator_steps": str(args.steps), "estimator_seed": str(args.seed),
                "estimator_camera_probability": f"{args.camera_probability:g}",
                **{k: f"{v:.3f}" for k, v in report.items()}}
    save_model(network, args.out, metadata=meta)
    for k, v in report.items():
        print(f"{k}: {v:.3f} stops")
    print(f"{args.out} ({time.monotonic() - t0:.0f} s)")
    return 0
