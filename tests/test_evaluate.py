"""``lowlight eval``: the Table II/III protocol, real-photo checks and the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hybridnet import HybridNet, HybridNetConfig, save_model
from hybridnet.data import load_rgb8
from hybridnet.degrade import image_seed, table2_input
from hybridnet.enhancer import Enhancer
from hybridnet.evaluate import (
    OURS,
    SyntheticRow,
    evaluate_real,
    evaluate_synthetic,
    losses_to_baselines,
    newly_white,
    synthetic_summary,
    to8,
)
from hybridnet.metrics import psnr
from lowlight.cli import main


def _photo(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / h
    img = np.stack([0.5 + 0.3 * np.sin(xx * 3 + seed), 0.4 + 0.3 * yy, 0.6 - 0.2 * xx], -1)
    return np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for folder, n in (("clean/val", 3), ("lowlight/night", 2)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            img = _photo(i)
            if folder.startswith("lowlight"):
                img = img**3
            Image.fromarray(np.round(img * 255).astype(np.uint8)).save(root / folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_model(HybridNet(HybridNetConfig.tiny()),
                      tmp_path_factory.mktemp("w") / "tiny.safetensors")


class TestProtocol:
    def test_every_method_scored_on_the_table2_input(self, data_root: Path,
                                                     weights: Path) -> None:
        files = sorted((data_root / "clean/val").iterdir())
        rows = evaluate_synthetic(Enhancer(weights), {"val": files}, progress=False)
        assert len(rows) == 3 * 6
        # the input column is the 8-bit gamma-3 input, scored against the clean image
        clean = np.asarray(Image.open(files[0]), dtype=np.float32) / 255
        low = table2_input(clean, image_seed(files[0].name))
        row = next(r for r in rows if r.image == files[0].name and r.method == "input")
        assert row.psnr == pytest.approx(psnr(to8(low), clean), abs=1e-9)
        oracle = next(r for r in rows if r.image == files[0].name
                      and r.method == "best global gamma")
        inverse = next(r for r in rows if r.image == files[0].name
                       and r.method == "inverse gamma")
        assert oracle.psnr >= inverse.psnr - 0.05  # the oracle is the best global curve

    def test_16_bit_gray_reference_read_at_its_scale(self, tmp_path: Path,
                                                     weights: Path) -> None:
        """A 16-bit gray PNG (Pillow mode I;16) is a gray photo, not a white one."""
        gray = np.round(_photo(5)[..., 1] * 65535).astype(np.uint16)
        Image.fromarray(gray).save(tmp_path / "g16.png")
        rows = evaluate_synthetic(Enhancer(weights), {"v": [tmp_path / "g16.png"]},
                                  methods=("input",), progress=False)
        clean = np.repeat(gray[..., None] / np.float32(65535), 3, axis=2).astype(np.float32)
        low = table2_input(clean, image_seed("g16.png"))
        assert rows[0].psnr == pytest.approx(psnr(to8(low), clean), abs=1e-6)

    def test_training_photos_read_like_the_product_does(self, tmp_path: Path) -> None:
        gray = np.round(_photo(6)[..., 0] * 65535).astype(np.uint16)
        Image.fromarray(gray).save(tmp_path / "g16.png")
        expected = np.round(gray / 65535 * 255).astype(np.uint8)
        assert np.array_equal(load_rgb8(tmp_path / "g16.png"), np.repeat(expected[..., None], 3, 2))

    def test_same_inputs_every_run(self, data_root: Path, weights: Path) -> None:
        files = sorted((data_root / "clean/val").iterdir())[:1]
        a = evaluate_synthetic(Enhancer(weights), {"v": files}, methods=("input",),
                               progress=False)
        b = evaluate_synthetic(Enhancer(weights), {"v": files}, methods=("input",),
                               progress=False)
        assert a == b

    def test_summary_and_losses(self) -> None:
        def row(image: str, method: str, p: float, s: float) -> SyntheticRow:
            return SyntheticRow("d", image, method, p, s, 0, 0, 0, 0)

        rows = [row("a", OURS, 30, 0.9), row("a", "LIME", 20, 0.95),
                row("b", OURS, 28, 0.8), row("b", "LIME", 29, 0.7)]
        summary = synthetic_summary(rows)
        assert summary[("all", OURS)]["psnr"] == pytest.approx(29.0)
        assert losses_to_baselines(rows) == [("d/a", "LIME", "ssim"), ("d/b", "LIME", "psnr")]

    def test_newly_white(self) -> None:
        before = np.zeros((2, 2, 3), np.float32)
        before[0, 0] = 0.95  # already near white
        after = np.ones((2, 2, 3), np.float32)
        after[1, 1] = 0.5
        assert newly_white(before, after) == pytest.approx(2 / 4)


class TestReport:
    def test_real_photos_measured_and_sheets_drawn(self, data_root: Path, weights: Path,
                                                   tmp_path: Path) -> None:
        files = sorted((data_root / "lowlight/night").iterdir())
        rows, sheets = evaluate_real(Enhancer(weights), {"night": files}, tmp_path,
                                     progress=False, sheet_limit=1, thumb_height=40)
        assert {(r.image, r.method) for r in rows} == {
            (f.name, m) for f in files for m in ("input", OURS, "LIME")}
        assert len(sheets) == 1
        with Image.open(sheets[0]) as sheet:
            assert sheet.height < 40 * 3 and sheet.width > 3 * 40  # one row of three

    def test_lowlight_eval_writes_the_report(self, data_root: Path, weights: Path,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
        out = tmp_path / "report"
        code = main(["eval", "--weights", str(weights), "--data-root", str(data_root),
                     "--sets", "clean/val", "--real", "lowlight/night", "--out", str(out),
                     "--no-progress"])
        assert code == 0, capsys.readouterr().err
        text = (out / "report.md").read_text()
        for needle in ("Table II protocol", "| clean/val |", "best global gamma", "LIME",
                       "MSE_hsv", "Real low-light photos", "lowlight/night", "![lowlight_night"):
            assert needle in text, needle
        assert (out / "synthetic.csv").read_text().count("\n") == 1 + 3 * 6
        assert (out / "real.csv").exists() and list((out / "sheets").glob("*.png"))

    def test_missing_data_is_a_usage_error(self, weights: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
        code = main(["eval", "--weights", str(weights), "--data-root", str(tmp_path),
                     "--no-progress"])
        assert code == 2 and "--data-root" in capsys.readouterr().err
