"""Evaluation as in Tables II and III of the paper, and no-reference checks on real photos.

Synthetic protocol (Table II): each clean validation image is darkened with gamma 3 and
Gaussian noise sigma 0.01 on [0, 1], clipped and stored on 8 bits
(:func:`hybridnet.degrade.table2_input`, noise seeded per image by its file name, so
every run sees the same inputs). Every method gets that 8-bit input and its output is
stored on 8 bits too, as a photo would be. Per image and on average: PSNR, SSIM
(Gaussian window, Wang et al. 2004) and the Table III errors in HSV.

Methods: our network (through :class:`hybridnet.Enhancer`, the product's own path), the
dark input itself, the inverse gamma, histogram equalisation, LIME (Guo et al. 2017) and
the best single global gamma chosen with the reference (an upper bound for any global
tone curve).

Real low-light photos have no reference: brightness, a noise estimate, a colour-cast
measure and the share of pixels newly clipped to white, for the input, ours and LIME,
and contact sheets (input | ours | LIME) a person can look at. Photos larger than
``max_side`` are downscaled first (box filter) to keep LIME's solver fast.

Every file is read as the product reads it (:func:`hybridnet.imageio.read_rgb`): 16-bit
and float images keep their scale, embedded ICC profiles are converted to sRGB.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from hybridnet import baselines, metrics
from hybridnet.degrade import image_seed, table2_input
from hybridnet.enhancer import Enhancer
from hybridnet.imageio import read_rgb
from lowlight.progress import ProgressBar

F32 = NDArray[np.float32]
Method = Callable[[F32, F32], F32]

OURS: Final = "ours"
#: Methods of the synthetic table, in column order.
SYNTHETIC_METHODS: Final = (
    "input", "inverse gamma", "histogram eq.", "LIME", "best global gamma", OURS,
)


def to8(image: F32) -> F32:
    """Store on 8 bits and read back, as a saved photo would be."""
    return (np.round(np.clip(image, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


@dataclass
class SyntheticRow:
    """Scores of one method on one validation image."""

    dataset: str
    image: str
    method: str
    psnr: float
    ssim: float
    mse_h: float
    mse_s: float
    mse_v: float
    mse_hsv: float


@dataclass
class RealRow:
    """No-reference measures of one method on one real photo."""

    dataset: str
    image: str
    method: str
    brightness: float
    noise: float
    colour_cast: float
    new_white: float


@dataclass
class Evaluation:
    """Everything :func:`write_report` needs."""

    synthetic: list[SyntheticRow] = field(default_factory=list)
    real: list[RealRow] = field(default_factory=list)
    sheets: list[Path] = field(default_factory=list)
    model: str = ""


def synthetic_methods(enhancer: Enhancer) -> dict[str, Method]:
    """The methods of the synthetic table, each ``(low, reference) -> output``."""
    def ours(low: F32, _ref: F32) -> F32:
        out = enhancer.enhance(np.round(low * 255).astype(np.uint8))
        return out.astype(np.float32) / 255.0

    return {
        "input": lambda low, _ref: low,
        "inverse gamma": lambda low, _ref: baselines.inverse_gamma(low, 3.0),
        "histogram eq.": lambda low, _ref: baselines.histogram_equalisation(low),
        "LIME": lambda low, _ref: baselines.lime(low),
        "best global gamma": lambda low, ref: baselines.best_global_gamma(low, ref)[0],
        OURS: ours,
    }


def evaluate_synthetic(
    enhancer: Enhancer,
    sets: Mapping[str, Sequence[Path]],
    *,
    methods: Sequence[str] = SYNTHETIC_METHODS,
    progress: bool = True,
) -> list[SyntheticRow]:
    """Table II/III protocol on clean image files grouped by dataset name."""
    table = synthetic_methods(enhancer)
    unknown = sorted(set(methods) - set(table))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {sorted(table)}")
    rows: list[SyntheticRow] = []
    total = sum(len(files) for files in sets.values())
    bar = ProgressBar(total, "eval", enabled=progress, unit="img")
    for dataset, files in sets.items():
        for path in files:
            clean = read_rgb(path)
            low = table2_input(clean, image_seed(path.name))
            for name in methods:
                out = to8(table[name](low, clean))
                hsv = metrics.mse_hsv(out, clean)
                rows.append(SyntheticRow(
                    dataset, path.name, name, metrics.psnr(out, clean), metrics.ssim(out, clean),
                    hsv.mse_h, hsv.mse_s, hsv.mse_v, hsv.mse_hsv,
                ))
            bar.update(1)
    bar.close()
    return rows


def newly_white(before: F32, after: F32) -> float:
    """Share of pixels clipped to white (all channels >= 254/255) that were not near white."""
    white_after = (after >= 254 / 255).all(axis=2)
    white_before = (before >= 0.9).all(axis=2)
    return float(np.mean(white_after & ~white_before))


def evaluate_real(
    enhancer: Enhancer,
    sets: Mapping[str, Sequence[Path]],
    sheet_dir: Path,
    *,
    max_side: int = 1024,
    thumb_height: int = 180,
    rows_per_sheet: int = 10,
    sheet_limit: int | None = None,
    progress: bool = True,
) -> tuple[list[RealRow], list[Path]]:
    """No-reference measures and contact sheets for real low-light photos.

    The measures cover every photo; the contact sheets show the first ``sheet_limit`` of
    each folder (all by default), ``rows_per_sheet`` rows per PNG.
    """
    rows: list[RealRow] = []
    sheets: list[Path] = []
    sheet_dir.mkdir(parents=True, exist_ok=True)
    total = sum(len(files) for files in sets.values())
    bar = ProgressBar(total, "real", enabled=progress, unit="img")
    for dataset, files in sets.items():
        triplets: list[tuple[str, F32, F32, F32]] = []
        for path in files:
            low = read_rgb(path, max_side)
            ours8 = enhancer.enhance(np.round(low * 255).astype(np.uint8))
            ours = (ours8.astype(np.float32) / np.float32(255)).astype(np.float32)
            lime = to8(baselines.lime(low))
            for method, image in (("input", low), (OURS, ours), ("LIME", lime)):
                rows.append(RealRow(
                    dataset, path.name, method, metrics.brightness(image),
                    metrics.noise_sigma(image), metrics.colour_cast(image),
                    newly_white(low, image),
                ))
            if sheet_limit is None or len(triplets) < sheet_limit:
                triplets.append((path.name, low, ours, lime))
            bar.update(1)
        safe = dataset.replace("/", "_")
        for page in range(math.ceil(len(triplets) / rows_per_sheet)):
            chunk = triplets[page * rows_per_sheet : (page + 1) * rows_per_sheet]
            path = sheet_dir / f"{safe}_{page + 1}.png"
            contact_sheet(chunk, thumb_height).save(path, optimize=True)
            sheets.append(path)
    bar.close()
    return rows, sheets


def contact_sheet(triplets: Sequence[tuple[str, F32, F32, F32]], height: int) -> Image.Image:
    """Rows of ``input | ours | LIME`` thumbnails with the file name above each row."""
    label_h, pad = 18, 4
    thumbs = []
    for name, *images in triplets:
        row = []
        for img in images:
            im = Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8))
            w = max(1, round(im.width * height / im.height))
            row.append(im.resize((w, height), Image.Resampling.BOX))
        thumbs.append((name, row))
    width = max(sum(t.width for t in row) + pad * 4 for _, row in thumbs)
    header = 22
    sheet = Image.new("RGB", (width, header + len(thumbs) * (height + label_h + pad)),
                      (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 4), "input  |  ours  |  LIME", fill=(230, 230, 230))
    y = header
    for name, row in thumbs:
        draw.text((pad, y + 2), name, fill=(200, 200, 200))
        x = pad
        for im in row:
            sheet.paste(im, (x, y + label_h))
            x += im.width + pad
        y += height + label_h + pad
    return sheet


# --------------------------------------------------------------------------- report


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def synthetic_summary(rows: Sequence[SyntheticRow]) -> dict[tuple[str, str], dict[str, float]]:
    """Averages per (dataset or "all", method)."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    datasets = [*sorted({r.dataset for r in rows}), "all"]
    methods = list(dict.fromkeys(r.method for r in rows))
    for d in datasets:
        for m in methods:
            sel = [r for r in rows if r.method == m and (d == "all" or r.dataset == d)]
            if sel:
                out[(d, m)] = {
                    k: _mean([getattr(r, k) for r in sel])
                    for k in ("psnr", "ssim", "mse_h", "mse_s", "mse_v", "mse_hsv")
                }
    return out


def losses_to_baselines(rows: Sequence[SyntheticRow]) -> list[tuple[str, str, str]]:
    """(image, baseline, metric) for every image where a baseline beats ours in PSNR or SSIM."""
    by_image: dict[tuple[str, str], dict[str, SyntheticRow]] = {}
    for r in rows:
        by_image.setdefault((r.dataset, r.image), {})[r.method] = r
    losses = []
    for (dataset, image), methods in sorted(by_image.items()):
        ours = methods.get(OURS)
        if ours is None:
            continue
        for name, r in methods.items():
            if name == OURS:
                continue
            for metric in ("psnr", "ssim"):
                if getattr(r, metric) >= getattr(ours, metric):
                    losses.append((f"{dataset}/{image}", name, metric))
    return losses


def write_csv(path: Path, rows: Sequence[SyntheticRow] | Sequence[RealRow]) -> None:
    if not rows:
        return
    names = list(rows[0].__dataclass_fields__)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for r in rows:
            writer.writerow([getattr(r, n) for n in names])


def write_report(out_dir: Path, ev: Evaluation, title: str = "Evaluation") -> Path:
    """``report.md`` with the tables, plus CSV files of every row, in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", ""]
    if ev.model:
        lines += [f"Model: {ev.model}", ""]
    if ev.synthetic:
        write_csv(out_dir / "synthetic.csv", ev.synthetic)
        summary = synthetic_summary(ev.synthetic)
        methods = list(dict.fromkeys(r.method for r in ev.synthetic))
        datasets = [*sorted({r.dataset for r in ev.synthetic}), "all"]
        n_images = len({(r.dataset, r.image) for r in ev.synthetic})
        lines += [
            "## Synthetic low-light images (Table II protocol)",
            "",
            f"{n_images} validation images; gamma 3, Gaussian noise sigma 0.01, 8-bit input "
            "and output. PSNR in dB / SSIM; best global gamma uses the reference (an upper "
            "bound for any global tone curve).",
            "",
            "| dataset | " + " | ".join(methods) + " |",
            "|---|" + "---|" * len(methods),
        ]
        for d in datasets:
            cells = []
            for m in methods:
                s = summary.get((d, m))
                cells.append(f"{s['psnr']:.2f} / {s['ssim']:.3f}" if s else "-")
            lines.append(f"| {d} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "### Colour (Table III protocol): average MSE in HSV, H and S in [0, 1], V in [0, 255]",
            "",
            "| method | MSE_hsv | MSE_h | MSE_s | MSE_v |",
            "|---|---|---|---|---|",
        ]
        for m in methods:
            s = summary[("all", m)]
            lines.append(f"| {m} | {s['mse_hsv']:.2f} | {s['mse_h']:.4f} | {s['mse_s']:.4f} | "
                         f"{s['mse_v']:.2f} |")
        losses = losses_to_baselines(ev.synthetic)
        lost_images = sorted({img for img, _, _ in losses})
        lines += ["", f"Ours is ahead of every baseline in both PSNR and SSIM on "
                      f"{n_images - len(lost_images)} of {n_images} images."]
        if losses:
            lines += ["", "Images where a baseline is not behind ours:", ""]
            lines += [f"- {img}: {method} ({metric})" for img, method, metric in losses[:100]]
            if len(losses) > 100:
                lines.append(f"- ... and {len(losses) - 100} more (see synthetic.csv)")
        lines += ["", "### Per image (PSNR / SSIM)", "",
                  "| image | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
        by_image: dict[str, dict[str, SyntheticRow]] = {}
        for r in ev.synthetic:
            by_image.setdefault(f"{r.dataset}/{r.image}", {})[r.method] = r
        for img, per in by_image.items():
            cells = [f"{per[m].psnr:.2f} / {per[m].ssim:.3f}" if m in per else "-" for m in methods]
            lines.append(f"| {img} | " + " | ".join(cells) + " |")
    if ev.real:
        write_csv(out_dir / "real.csv", ev.real)
        lines += [
            "",
            "## Real low-light photos (no reference)",
            "",
            "Averages per set: brightness (mean luma, 0..1), noise (Immerkær sigma on luma, "
            "0..1), colour cast (chroma of the mean CIELAB a*b*), new white (share of pixels "
            "clipped to white that were not near white in the input).",
            "",
            "| set | method | brightness | noise | colour cast | new white |",
            "|---|---|---|---|---|---|",
        ]
        for d in sorted({r.dataset for r in ev.real}):
            for m in dict.fromkeys(r.method for r in ev.real):
                sel = [r for r in ev.real if r.dataset == d and r.method == m]
                lines.append(
                    f"| {d} | {m} | {_mean([r.brightness for r in sel]):.3f} | "
                    f"{_mean([r.noise for r in sel]):.4f} | "
                    f"{_mean([r.colour_cast for r in sel]):.2f} | "
                    f"{_mean([r.new_white for r in sel]):.4f} |"
                )
        if ev.sheets:
            lines += ["", "### Contact sheets (input | ours | LIME)", ""]
            lines += [f"![{p.stem}]({p.relative_to(out_dir).as_posix()})" for p in ev.sheets]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
