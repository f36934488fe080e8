"""Evaluation: the synthetic protocols against the reference, and real photos without one.

Synthetic (:mod:`hybridnet.protocols`): each clean validation photo is darkened by every
protocol (the paper's Table II, a gamma sweep, camera-like underexposures with and
without JPEG), every method gets that 8-bit input and its output is stored on 8 bits,
as a photo would be. Per image: PSNR, SSIM (Gaussian window, Wang et al. 2004) and the
Table III errors in HSV. Ours runs through :class:`hybridnet.Enhancer` at its default
settings (the exposure estimated from the photo; nothing about the darkening is told).

Methods: ours, the dark input, two oracles fitted to the reference -- the best global
gamma (``gamma oracle``) and the best global tone curve of any shape (``LUT oracle``,
an upper bound for every method that applies one curve) -- and, on the Table II
protocol, the paper's baselines (inverse gamma, histogram equalisation, LIME).

Real low-light photos have no reference: :func:`hybridnet.metrics.photo_stats` (mean
luma, black and white point, RMS contrast, colourfulness, wavelet noise, newly clipped
white, colour cast) of the input, ours, LIME and any peer enhancer whose outputs are
given, contact sheets and full-resolution crops a person can look at.

Every file is read as the product reads it (:func:`hybridnet.imageio.read_rgb`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from hybridnet import baselines, metrics
from hybridnet.enhancer import Enhancer
from hybridnet.imageio import read_rgb
from hybridnet.protocols import ALL, Protocol

F32 = NDArray[np.float32]
Method = Callable[[F32, F32], F32]
#: ``progress(done, total)`` after each image.
Progress = Callable[[int, int], None] | None

OURS: Final = "ours"
INPUT: Final = "input"
LUT_ORACLE: Final = "LUT oracle"
GAMMA_ORACLE: Final = "gamma oracle"
LIME: Final = "LIME"
#: Methods on every protocol, in column order.
METHODS: Final = (INPUT, GAMMA_ORACLE, LUT_ORACLE, OURS)
#: Methods on the Table II protocol (the paper's baselines as well).
TABLE2_METHODS: Final = (INPUT, "inverse gamma", "histogram eq.", LIME, GAMMA_ORACLE,
                         LUT_ORACLE, OURS)
#: Methods that see the reference: they bound what a method of their kind could do.
ORACLES: Final = (GAMMA_ORACLE, LUT_ORACLE)


def to8(image: F32) -> F32:
    """Store on 8 bits and read back, as a saved photo would be."""
    return (np.round(np.clip(image, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def from8(image: NDArray[np.uint8]) -> F32:
    """An 8-bit image as float32 in [0, 1]."""
    return (image.astype(np.float32) / np.float32(255.0)).astype(np.float32)


@dataclass
class SyntheticRow:
    """Scores of one method on one validation image under one protocol."""

    protocol: str
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
    """No-reference measures of one method on one real photo (see :class:`PhotoStats`)."""

    dataset: str
    image: str
    method: str
    mean_luma: float
    black_point: float
    white_point: float
    contrast: float
    colourfulness: float
    noise: float
    new_white: float
    colour_cast: float


#: The measures of :class:`RealRow`, in table order.
REAL_MEASURES: Final = tuple(metrics.PhotoStats._fields)


@dataclass
class Evaluation:
    """Everything :func:`hybridnet.report.write_report` needs."""

    synthetic: list[SyntheticRow] = field(default_factory=list)
    real: list[RealRow] = field(default_factory=list)
    sheets: list[Path] = field(default_factory=list)
    model: str = ""


def synthetic_methods(enhancer: Enhancer) -> dict[str, Method]:
    """Every method of the synthetic tables, each ``(low, reference) -> output``."""
    def ours(low: F32, _ref: F32) -> F32:
        return from8(np.asarray(enhancer.enhance(np.round(low * 255).astype(np.uint8))))

    return {
        INPUT: lambda low, _ref: low,
        "inverse gamma": lambda low, _ref: baselines.inverse_gamma(low, 3.0),
        "histogram eq.": lambda low, _ref: baselines.histogram_equalisation(low),
        LIME: lambda low, _ref: baselines.lime(low),
        GAMMA_ORACLE: lambda low, ref: baselines.best_global_gamma(low, ref)[0],
        LUT_ORACLE: lambda low, ref: baselines.best_tone_curve(low, ref),
        OURS: ours,
    }


def evaluate_synthetic(
    enhancer: Enhancer,
    sets: Mapping[str, Sequence[Path]],
    protocols: Sequence[Protocol] = ALL,
    *,
    methods: Sequence[str] | None = None,
    progress: Progress = None,
) -> list[SyntheticRow]:
    """Score every method on clean image files (grouped by dataset) under ``protocols``.

    Args:
        methods: the methods to run (default: :data:`TABLE2_METHODS` on ``table2``,
            :data:`METHODS` on the others).
    """
    table = synthetic_methods(enhancer)
    unknown = sorted(set(methods or ()) - set(table))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {sorted(table)}")
    rows: list[SyntheticRow] = []
    total = sum(len(files) for files in sets.values())
    done = 0
    for dataset, files in sets.items():
        for path in files:
            clean = read_rgb(path)
            for protocol in protocols:
                low = protocol.darken(clean, path.name)
                names = methods or (TABLE2_METHODS if protocol.kind == "table2" else METHODS)
                for name in names:
                    out = to8(table[name](low, clean))
                    hsv = metrics.mse_hsv(out, clean)
                    rows.append(SyntheticRow(
                        protocol.name, dataset, path.name, name, metrics.psnr(out, clean),
                        metrics.ssim(out, clean), hsv.mse_h, hsv.mse_s, hsv.mse_v, hsv.mse_hsv,
                    ))
            done += 1
            if progress is not None:
                progress(done, total)
    return rows


def peer_output(peers: Path, peer: str, folder: Path, image: Path) -> Path:
    """Where a peer enhancer's runner put its result for ``image`` of ``folder``:
    ``PEERS/<peer>/out_<folder name>/<image stem>.png`` (``../shared/peers`` layout)."""
    return peers / peer / f"out_{folder.name}" / f"{image.stem}.png"


def evaluate_real(
    enhancer: Enhancer,
    sets: Mapping[str, Sequence[Path]],
    sheet_dir: Path,
    *,
    peers: Path | None = None,
    with_lime: bool = True,
    max_side: int = 1024,
    thumb_height: int = 180,
    crop: int = 160,
    rows_per_sheet: int = 8,
    sheet_limit: int | None = None,
    progress: Progress = None,
) -> tuple[list[RealRow], list[Path]]:
    """No-reference measures, contact sheets and full-resolution crops of real photos.

    Args:
        sets: photos grouped by their folder's name.
        sheet_dir: where the sheets go.
        peers: a folder with one sub-folder per peer enhancer laid out as
            :func:`peer_output` says; every peer found there joins the tables and sheets.
        with_lime: include LIME (slow on large photos; photos larger than ``max_side``
            are downscaled first, box filter, for every method).
        crop: side of the full-resolution crop taken at each photo's centre.
        sheet_limit: the sheets show the first N photos of each folder (all by default);
            the measures cover all.
    """
    rows: list[RealRow] = []
    sheets: list[Path] = []
    sheet_dir.mkdir(parents=True, exist_ok=True)
    peer_names = sorted(p.name for p in peers.iterdir() if p.is_dir()) if peers else []
    total = sum(len(files) for files in sets.values())
    done = 0
    for dataset, files in sets.items():
        shown: list[tuple[str, list[tuple[str, F32]]]] = []
        for path in files:
            low = read_rgb(path, max_side)
            results: list[tuple[str, F32]] = [
                (INPUT, low),
                (OURS, from8(np.asarray(enhancer.enhance(np.round(low * 255).astype(np.uint8))))),
            ]
            for peer in peer_names:
                found = peer_output(peers or Path(), peer, path.parent, path)
                if found.is_file():
                    image = read_rgb(found, max_side)
                    if image.shape == low.shape:
                        results.append((peer, image))
            if with_lime:
                results.append((LIME, to8(baselines.lime(low))))
            for method, image in results:
                stats = metrics.photo_stats(image, low)
                rows.append(RealRow(dataset, path.name, method, *stats))
            if sheet_limit is None or len(shown) < sheet_limit:
                shown.append((path.name, results))
            done += 1
            if progress is not None:
                progress(done, total)
        safe = dataset.replace("/", "_")
        for page in range(math.ceil(len(shown) / rows_per_sheet)):
            chunk = shown[page * rows_per_sheet : (page + 1) * rows_per_sheet]
            path = sheet_dir / f"{safe}_{page + 1}.png"
            contact_sheet(chunk, thumb_height).save(path, optimize=True)
            sheets.append(path)
            path = sheet_dir / f"{safe}_{page + 1}_crops.png"
            contact_sheet([(name, [(m, centre_crop(img, crop)) for m, img in images])
                           for name, images in chunk], crop).save(path, optimize=True)
            sheets.append(path)
    return rows, sheets


def centre_crop(image: F32, side: int) -> F32:
    """The ``side x side`` pixels at the centre of ``image`` (all of it when smaller)."""
    h, w = image.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return image[top : top + side, left : left + side]


def contact_sheet(
    rows: Sequence[tuple[str, Sequence[tuple[str, F32]]]], height: int
) -> Image.Image:
    """Rows of images side by side, each row under its file name, the methods on top.

    Each image is scaled to ``height`` pixels (box filter; a crop of ``height`` pixels
    is shown at 100 %).
    """
    label_h, pad, header = 18, 4, 22
    thumbs = []
    for name, images in rows:
        row = []
        for _method, img in images:
            im = Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8))
            w = max(1, round(im.width * height / im.height))
            row.append(im if im.height == height else im.resize((w, height),
                                                                 Image.Resampling.BOX))
        thumbs.append((name, row))
    width = max(sum(t.width for t in row) + pad * (len(row) + 1) for _, row in thumbs)
    sheet = Image.new("RGB", (width, header + len(thumbs) * (height + label_h + pad)),
                      (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    methods = [m for m, _ in rows[0][1]] if rows else []
    draw.text((pad, 4), "  |  ".join(methods), fill=(230, 230, 230))
    y = header
    for name, row in thumbs:
        draw.text((pad, y + 2), name, fill=(200, 200, 200))
        x = pad
        for im in row:
            sheet.paste(im, (x, y + label_h))
            x += im.width + pad
        y += height + label_h + pad
    return sheet
