"""The evaluation report: markdown tables of :mod:`hybridnet.evaluate`'s rows, CSV files,
and what changed against an earlier report (numpy-free, torch-free)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Final

from hybridnet.evaluate import (
    INPUT,
    LUT_ORACLE,
    OURS,
    REAL_MEASURES,
    Evaluation,
    RealRow,
    SyntheticRow,
)

#: Real photos count as well exposed from this input mean luma (0..255) up.
WELL_EXPOSED: Final = 100.0
#: The mean luma range (0..255) of a well-exposed result.
GOOD_LUMA: Final = (90.0, 150.0)
#: How each real measure is written, and which way is better (+1 higher, -1 lower, 0 n/a).
_REAL_FORMAT: Final = {
    "mean_luma": ("{:.1f}", 0), "black_point": ("{:.1f}", -1), "white_point": ("{:.1f}", 0),
    "contrast": ("{:.1f}", 1), "colourfulness": ("{:.1f}", 1), "noise": ("{:.2f}", -1),
    "new_white": ("{:.2%}", -1), "colour_cast": ("{:.2f}", -1),
}
#: Older reports' method names.
_RENAMED: Final = {"best global gamma": "gamma oracle"}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def synthetic_summary(
    rows: Sequence[SyntheticRow],
) -> dict[tuple[str, str, str], tuple[float, float]]:
    """``(protocol, dataset or "all", method) -> (mean PSNR, mean SSIM)``."""
    groups: dict[tuple[str, str, str], list[SyntheticRow]] = {}
    for r in rows:
        for d in (r.dataset, "all"):
            groups.setdefault((r.protocol, d, r.method), []).append(r)
    return {k: (_mean([r.psnr for r in v]), _mean([r.ssim for r in v])) for k, v in groups.items()}


def real_summary(rows: Sequence[RealRow]) -> dict[tuple[str, str], dict[str, float]]:
    """``(dataset or "all", method) ->`` the mean of every measure, plus ``in_range`` (the
    share of photos whose mean luma lies in :data:`GOOD_LUMA`) and ``well_exposed_change``
    (mean absolute change of mean luma on photos whose input is at least
    :data:`WELL_EXPOSED`)."""
    inputs = {(r.dataset, r.image): r for r in rows if r.method == INPUT}
    groups: dict[tuple[str, str], list[RealRow]] = {}
    for r in rows:
        for d in (r.dataset, "all"):
            groups.setdefault((d, r.method), []).append(r)
    out: dict[tuple[str, str], dict[str, float]] = {}
    for key, sel in groups.items():
        summary = {m: _mean([getattr(r, m) for r in sel]) for m in REAL_MEASURES}
        lo, hi = GOOD_LUMA
        summary["in_range"] = _mean([1.0 if lo <= r.mean_luma <= hi else 0.0 for r in sel])
        changes = [abs(r.mean_luma - inputs[(r.dataset, r.image)].mean_luma) for r in sel
                   if (r.dataset, r.image) in inputs
                   and inputs[(r.dataset, r.image)].mean_luma >= WELL_EXPOSED]
        summary["well_exposed_change"] = _mean(changes)
        summary["well_exposed_count"] = float(len(changes))
        out[key] = summary
    return out


def losses_to_baselines(rows: Sequence[SyntheticRow], protocol: str = "table2"
                        ) -> list[tuple[str, str, str]]:
    """(image, method, metric) wherever a method that does not see the reference scores at
    least as well as ours (PSNR or SSIM) under ``protocol``."""
    from hybridnet.evaluate import ORACLES

    by_image: dict[tuple[str, str], dict[str, SyntheticRow]] = {}
    for r in rows:
        if r.protocol == protocol:
            by_image.setdefault((r.dataset, r.image), {})[r.method] = r
    losses = []
    for (dataset, image), methods in sorted(by_image.items()):
        ours = methods.get(OURS)
        if ours is None:
            continue
        for name, r in methods.items():
            if name == OURS or name in ORACLES:
                continue
            for metric in ("psnr", "ssim"):
                if getattr(r, metric) >= getattr(ours, metric):
                    losses.append((f"{dataset}/{image}", name, metric))
    return losses


def write_csv(path: Path, rows: Sequence[SyntheticRow] | Sequence[RealRow]) -> None:
    if not rows:
        return
    names = [f.name for f in fields(rows[0])]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for r in rows:
            writer.writerow([getattr(r, n) for n in names])


def read_rows(folder: Path) -> Evaluation:
    """The rows of an earlier report folder (its ``synthetic.csv`` and ``real.csv``).

    Reports from before the protocols (no ``protocol`` column) are read as ``table2``;
    the real measures they lack are left out of comparisons.
    """
    ev = Evaluation()
    path = folder / "synthetic.csv"
    if path.is_file():
        with path.open(encoding="utf-8") as fh:
            for raw in csv.DictReader(fh):
                ev.synthetic.append(SyntheticRow(
                    raw.get("protocol", "table2"), raw["dataset"], raw["image"],
                    _RENAMED.get(raw["method"], raw["method"]),
                    *(float(raw[k]) for k in ("psnr", "ssim", "mse_h", "mse_s", "mse_v",
                                              "mse_hsv")),
                ))
    path = folder / "real.csv"
    if path.is_file():
        with path.open(encoding="utf-8") as fh:
            for raw in csv.DictReader(fh):
                values = [float(raw[m]) if m in raw else math.nan for m in REAL_MEASURES]
                ev.real.append(RealRow(raw["dataset"], raw["image"], raw["method"], *values))
    return ev


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def synthetic_tables(rows: Sequence[SyntheticRow]) -> list[str]:
    """Markdown: one line per protocol (all images), PSNR / SSIM per method, ours - LUT."""
    summary = synthetic_summary(rows)
    protocols = list(dict.fromkeys(r.protocol for r in rows))
    methods = list(dict.fromkeys(r.method for r in rows))
    body = []
    for p in protocols:
        cells = [p]
        for m in methods:
            s = summary.get((p, "all", m))
            cells.append(f"{s[0]:.2f} / {s[1]:.3f}" if s else "-")
        ours, lut = summary.get((p, "all", OURS)), summary.get((p, "all", LUT_ORACLE))
        cells.append(f"{ours[0] - lut[0]:+.2f} / {ours[1] - lut[1]:+.3f}" if ours and lut else "-")
        body.append(cells)
    lines = _table(["protocol", *methods, "ours - LUT oracle"], body)
    datasets = sorted({r.dataset for r in rows})
    if len(datasets) > 1:
        lines += ["", "Per validation set (ours, PSNR / SSIM):", ""]
        lines += _table(["protocol", *datasets], [
            [p, *(f"{summary[(p, d, OURS)][0]:.2f} / {summary[(p, d, OURS)][1]:.3f}"
                  if (p, d, OURS) in summary else "-" for d in datasets)]
            for p in protocols])
    return lines


def real_tables(rows: Sequence[RealRow]) -> list[str]:
    """Markdown: every measure per method over all photos, then ours per set."""
    summary = real_summary(rows)
    methods = list(dict.fromkeys(r.method for r in rows))
    header = ["method", *REAL_MEASURES, "luma in 90..150", "well-exposed change"]

    def cells(key: tuple[str, str]) -> list[str]:
        s = summary[key]
        return [*(_REAL_FORMAT[m][0].format(s[m]) for m in REAL_MEASURES),
                f"{s['in_range']:.0%}",
                "-" if math.isnan(s["well_exposed_change"])
                else f"{s['well_exposed_change']:.1f} ({s['well_exposed_count']:.0f})"]

    lines = _table(header, [[m, *cells(("all", m))] for m in methods if ("all", m) in summary])
    datasets = sorted({r.dataset for r in rows})
    lines += ["", "Per folder, every method:", ""]
    lines += _table(["folder", *header], [
        [d, m, *cells((d, m))] for d in datasets for m in methods if (d, m) in summary])
    return lines


def changes(before: Evaluation, after: Evaluation, threshold: float = 0.005
            ) -> tuple[list[str], list[str]]:
    """Ours in ``after`` against ours in ``before``: (improved, worse) figures, as text.

    Synthetic: PSNR and SSIM per protocol both reports have; real: each measure with a
    better direction, over the photos both have (relative changes under ``threshold``
    count as unchanged).
    """
    better: list[str] = []
    worse: list[str] = []
    s0, s1 = synthetic_summary(before.synthetic), synthetic_summary(after.synthetic)
    for key, (psnr1, ssim1) in s1.items():
        protocol, dataset, method = key
        if method != OURS or dataset != "all" or key not in s0:
            continue
        psnr0, ssim0 = s0[key]
        for name, v0, v1, fmt in (("PSNR", psnr0, psnr1, "{:.2f}"), ("SSIM", ssim0, ssim1,
                                                                     "{:.4f}")):
            if abs(v1 - v0) <= threshold * max(abs(v0), 1e-9):
                continue
            text = f"{protocol} {name} {fmt.format(v0)} -> {fmt.format(v1)}"
            (better if v1 > v0 else worse).append(text)
    r0, r1 = real_summary(before.real), real_summary(after.real)
    if ("all", OURS) in r0 and ("all", OURS) in r1:
        for m in REAL_MEASURES:
            fmt, direction = _REAL_FORMAT[m]
            v0, v1 = r0[("all", OURS)][m], r1[("all", OURS)][m]
            if direction == 0 or math.isnan(v0) or math.isnan(v1):
                continue
            if abs(v1 - v0) <= threshold * max(abs(v0), 1e-9):
                continue
            text = f"real photos {m} {fmt.format(v0)} -> {fmt.format(v1)}"
            (better if (v1 - v0) * direction > 0 else worse).append(text)
    return better, worse


def write_report(
    out_dir: Path, ev: Evaluation, title: str = "Evaluation", baseline: Path | None = None
) -> tuple[Path, list[str]]:
    """``report.md`` and the CSV files in ``out_dir``; returns the path and the tables as
    markdown lines (what ``lowlight eval`` prints). ``baseline``: an earlier report
    folder to say what improved and what got worse against."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", ""]
    if ev.model:
        lines += [f"Model: {ev.model}", ""]
    tables: list[str] = []
    if ev.synthetic:
        write_csv(out_dir / "synthetic.csv", ev.synthetic)
        n_images = len({(r.dataset, r.image) for r in ev.synthetic})
        tables += [
            "## Synthetic darkenings, against the reference (PSNR dB / SSIM)", "",
            f"{n_images} validation images never trained on; every method at its default "
            "settings, 8-bit input and output (protocols: `hybridnet/protocols.py`). The "
            "oracles see the reference: the gamma oracle is the best global gamma, the LUT "
            "oracle the best global tone curve of any shape (an upper bound for any curve).",
            "", *synthetic_tables(ev.synthetic), "",
        ]
        losses = losses_to_baselines(ev.synthetic)
        if any(r.protocol == "table2" for r in ev.synthetic):
            lost = sorted({img for img, _, _ in losses})
            table2 = {(r.dataset, r.image) for r in ev.synthetic if r.protocol == "table2"}
            tables += [f"Table II protocol: ours is ahead of every baseline that does not see "
                       f"the reference, in PSNR and SSIM, on {len(table2) - len(lost)} of "
                       f"{len(table2)} images.", ""]
            lines_hsv = [
                [m, f"{_mean([r.mse_hsv for r in sel]):.2f}",
                 f"{_mean([r.mse_h for r in sel]):.4f}", f"{_mean([r.mse_s for r in sel]):.4f}",
                 f"{_mean([r.mse_v for r in sel]):.2f}"]
                for m in dict.fromkeys(r.method for r in ev.synthetic if r.protocol == "table2")
                for sel in [[r for r in ev.synthetic if r.protocol == "table2" and r.method == m]]
            ]
            tables += ["### Colour, Table III protocol (MSE in HSV; H, S in [0, 1], V in "
                       "[0, 255])", "",
                       *_table(["method", "MSE_hsv", "MSE_h", "MSE_s", "MSE_v"], lines_hsv), ""]
    if ev.real:
        write_csv(out_dir / "real.csv", ev.real)
        n_photos = len({(r.dataset, r.image) for r in ev.real})
        tables += [
            "## Real low-light photos, no reference", "",
            f"{n_photos} photos. Mean luma, black point (1st percentile of luma), white point "
            "(99th), RMS contrast (std of luma), noise (wavelet estimate on luma) on 0..255; "
            "colourfulness of Hasler & Suesstrunk; new white: share of pixels clipped to white "
            "that were not near white in the input; colour cast: chroma of the mean CIELAB "
            f"a*b*. Luma in 90..150: share of photos; well-exposed change: mean |change of mean "
            f"luma| on photos whose input mean luma is at least {WELL_EXPOSED:g} (their count).",
            "", *real_tables(ev.real), "",
        ]
    if baseline is not None:
        better, worse = changes(read_rows(baseline), ev)
        tables += [f"## Against {baseline}", "", "Improved:", "",
                   *([f"- {t}" for t in better] or ["- nothing"]), "", "Worse:", "",
                   *([f"- {t}" for t in worse] or ["- nothing"]), ""]
    lines += tables
    if ev.sheets:
        lines += ["## Contact sheets and full-resolution centre crops", ""]
        lines += [f"![{p.stem}]({p.relative_to(out_dir).as_posix()})" for p in ev.sheets]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, tables
