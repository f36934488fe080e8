"""Compare several trained models side by side: Table II subset and real low-light photos.

Used to choose the training degradation of the shipped model (gamma / realistic / mix):
for each model it reports the Table II protocol (PSNR/SSIM) on validation images and the
no-reference measures on real photos, and draws one contact sheet with a column per
model, so a person can look at colour, noise and clipping.

    python scripts/compare_models.py --out reports/ablation NAME=weights.safetensors ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from hybridnet import metrics
from hybridnet.data import default_data_root, list_images
from hybridnet.enhancer import Enhancer
from hybridnet.evaluate import OURS, evaluate_synthetic, newly_white, synthetic_summary
from hybridnet.imageio import read_rgb

REAL = ("lowlight/DICM", "lowlight/LIME", "lowlight/LOL_eval15_lowonly/low",
        "lowlight/SCI_testsamples/medium", "lowlight/SCI_testsamples/difficult")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="+", help="NAME=path/to/weights.safetensors")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data-root", type=Path, default=None)
    ap.add_argument("--synthetic", type=int, default=20,
                    help="validation images per set (0: real photos only)")
    ap.add_argument("--real", type=int, default=6, help="real photos per folder")
    ap.add_argument("--max-side", type=int, default=640)
    args = ap.parse_args()
    root = args.data_root or default_data_root()
    models = {}
    for item in args.models:
        name, _, path = item.partition("=")
        models[name] = Enhancer(path, device="cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    lines = ["# Model comparison", "", "| model | " + " | ".join(
        ["BSDS500/test PSNR/SSIM", "McMaster18 PSNR/SSIM", "real: brightness", "real: noise",
         "real: colour cast", "real: new white"]) + " |", "|---" * 7 + "|"]
    val = {"BSDS500/test": list_images([root / "clean/BSDS500/test"])[: args.synthetic],
           "McMaster18": list_images([root / "clean/McMaster18"])[: args.synthetic]}
    real_files = [f for d in REAL for f in list_images([root / d])[: args.real]]
    columns: dict[str, list[np.ndarray]] = {"input": []}
    for f in real_files:
        columns["input"].append(read_rgb(f, args.max_side))
    for name, enhancer in models.items():
        rows = evaluate_synthetic(enhancer, val, methods=(OURS,), progress=False)
        summary = synthetic_summary(rows)
        outs = []
        stats = []
        for low in columns["input"]:
            u8 = enhancer.enhance(np.round(low * 255).astype(np.uint8))
            out = np.asarray(u8, dtype=np.float32) * np.float32(1 / 255)
            outs.append(out)
            stats.append((metrics.brightness(out), metrics.noise_sigma(out),
                          metrics.colour_cast(out), newly_white(low, out)))
        columns[name] = outs
        mean = np.mean(stats, axis=0)
        cells = [f"{summary[(d, OURS)]['psnr']:.2f} / {summary[(d, OURS)]['ssim']:.3f}"
                 if (d, OURS) in summary else "-" for d in val]  # "-": --synthetic 0
        cells += [f"{mean[0]:.3f}", f"{mean[1]:.4f}", f"{mean[2]:.2f}", f"{mean[3]:.4f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    stats_in = np.mean([(metrics.brightness(x), metrics.noise_sigma(x), metrics.colour_cast(x), 0)
                        for x in columns["input"]], axis=0)
    lines.append(f"| input | - | - | {stats_in[0]:.3f} | {stats_in[1]:.4f} | "
                 f"{stats_in[2]:.2f} | - |")
    sheet = _sheet(columns, [f.name for f in real_files])
    sheet.save(args.out / "comparison.png", optimize=True)
    lines += ["", f"Real photos: the first {args.real} of each of {', '.join(REAL)}, "
              f"downscaled to {args.max_side} px.", "", "![comparison](comparison.png)"]
    (args.out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(args.out / "report.md")


def _sheet(
    columns: dict[str, list[np.ndarray]], names: list[str], height: int = 160
) -> Image.Image:
    titles = list(columns)
    rows = []
    for i in range(len(names)):
        row = []
        for t in titles:
            im = Image.fromarray(np.round(np.clip(columns[t][i], 0, 1) * 255).astype(np.uint8))
            row.append(im.resize((max(1, round(im.width * height / im.height)), height),
                                 Image.Resampling.BOX))
        rows.append(row)
    width = max(sum(im.width + 4 for im in row) for row in rows) + 4
    sheet = Image.new("RGB", (width, 20 + len(rows) * (height + 4)), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 4), "  |  ".join(titles), fill=(230, 230, 230))
    y = 20
    for row in rows:
        x = 4
        for im in row:
            sheet.paste(im, (x, y))
            x += im.width + 4
        y += height + 4
    return sheet


if __name__ == "__main__":
    main()
