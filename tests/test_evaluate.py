"""``lowlight eval``: the Table II/III protocol, real-photo checks and the report."""

from __future__ import annotations

import itertools
import math
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
    GAMMA_ORACLE,
    INPUT,
    LUT_ORACLE,
    OURS,
    Evaluation,
    RealRow,
    SyntheticRow,
    evaluate_real,
    evaluate_synthetic,
    to8,
)
from hybridnet.metrics import newly_clipped_white, psnr
from hybridnet.protocols import ALL, BY_NAME, CAMERA, GAMMA_SWEEP, TABLE2, resolve
from hybridnet.report import (
    changes,
    losses_to_baselines,
    read_rows,
    real_summary,
    synthetic_summary,
    write_csv,
)
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
    return save_model(
        HybridNet(HybridNetConfig.tiny()), tmp_path_factory.mktemp("w") / "tiny.safetensors"
    )


class TestProtocol:
    def test_every_method_scored_on_the_table2_input(self, data_root: Path, weights: Path) -> None:
        files = sorted((data_root / "clean/val").iterdir())
        rows = evaluate_synthetic(Enhancer(weights), {"val": files}, (TABLE2,))
        assert len(rows) == 3 * 7
        # the input column is the 8-bit gamma-3 input, scored against the clean image
        clean = np.asarray(Image.open(files[0]), dtype=np.float32) / 255
        low = table2_input(clean, image_seed(files[0].name))
        mine = {r.method: r for r in rows if r.image == files[0].name}
        assert mine[INPUT].psnr == pytest.approx(psnr(to8(low), clean), abs=1e-9)
        # the oracles see the reference: the best curve of any shape beats the best gamma,
        # which beats the fixed inverse gamma
        assert mine[LUT_ORACLE].psnr >= mine[GAMMA_ORACLE].psnr - 0.05
        assert mine[GAMMA_ORACLE].psnr >= mine["inverse gamma"].psnr - 0.05

    def test_other_protocols_score_ours_beside_the_oracles(
        self, data_root: Path, weights: Path
    ) -> None:
        files = sorted((data_root / "clean/val").iterdir())[:1]
        chosen = resolve(["gamma-2", "camera-3EV", "camera-3EV-jpeg"])
        rows = evaluate_synthetic(Enhancer(weights), {"val": files}, chosen)
        assert [(r.protocol, r.method) for r in rows] == [
            (p.name, m) for p in chosen for m in (INPUT, GAMMA_ORACLE, LUT_ORACLE, OURS)
        ]
        assert len({r.psnr for r in rows if r.method == INPUT}) == 3  # three different inputs

    def test_16_bit_gray_reference_read_at_its_scale(self, tmp_path: Path, weights: Path) -> None:
        """A 16-bit gray PNG (Pillow mode I;16) is a gray photo, not a white one."""
        gray = np.round(_photo(5)[..., 1] * 65535).astype(np.uint16)
        Image.fromarray(gray).save(tmp_path / "g16.png")
        rows = evaluate_synthetic(
            Enhancer(weights),
            {"v": [tmp_path / "g16.png"]},
            (TABLE2,),
            methods=("input",),
        )
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
        a = evaluate_synthetic(Enhancer(weights), {"v": files})
        b = evaluate_synthetic(Enhancer(weights), {"v": files})
        assert a == b and len({r.protocol for r in a}) == len(ALL)

    def test_unknown_method_is_refused(self, data_root: Path, weights: Path) -> None:
        files = sorted((data_root / "clean/val").iterdir())[:1]
        with pytest.raises(ValueError, match="unknown methods"):
            evaluate_synthetic(Enhancer(weights), {"v": files}, methods=("magic",))


class TestProtocols:
    clean = _photo(3).astype(np.float32)

    def test_deterministic_per_image_and_protocol(self) -> None:
        for p in ALL:
            a, b = p.darken(self.clean, "x.png"), p.darken(self.clean, "x.png")
            assert np.array_equal(a, b), p.name
            assert a.dtype == np.float32 and a.shape == self.clean.shape
            assert np.array_equal(a, to8(a)), p.name  # stored on 8 bits
        assert not np.array_equal(
            CAMERA[2].darken(self.clean, "x.png"), CAMERA[2].darken(self.clean, "y.png")
        )

    def test_darker_with_every_stop_and_gamma(self) -> None:
        means = [p.darken(self.clean, "x.png").mean() for p in CAMERA]
        assert all(a > b for a, b in itertools.pairwise(means)), means
        means = [p.darken(self.clean, "x.png").mean() for p in GAMMA_SWEEP]
        assert all(a > b for a, b in itertools.pairwise(means)), means

    def test_camera_is_about_n_stops_in_linear_light(self) -> None:
        flat = np.full((64, 64, 3), 0.6, np.float32)
        linear = ((0.6 + 0.055) / 1.055) ** 2.4
        for n, p in enumerate(CAMERA, start=1):
            low = p.darken(flat, "flat.png").mean()
            low_linear = ((low + 0.055) / 1.055) ** 2.4 if low > 0.04045 else low / 12.92
            assert math.log2(linear / low_linear) == pytest.approx(n, abs=0.35), p.name

    def test_jpeg_variant_differs_from_the_png_one(self) -> None:
        a = BY_NAME["camera-2EV"].darken(self.clean, "x.png")
        b = BY_NAME["camera-2EV-jpeg"].darken(self.clean, "x.png")
        assert not np.array_equal(a, b) and np.abs(a - b).mean() < 0.02

    def test_resolve_groups_and_unknowns(self) -> None:
        assert resolve(None) == ALL
        assert resolve(["gamma"]) == GAMMA_SWEEP
        assert resolve(["table2", "table2", "camera-1EV"]) == (TABLE2, CAMERA[0])
        with pytest.raises(ValueError, match="unknown protocol 'gamma-9'"):
            resolve(["gamma-9"])


def _srow(
    image: str, method: str, p: float, s: float, protocol: str = "table2", dataset: str = "d"
) -> SyntheticRow:
    return SyntheticRow(protocol, dataset, image, method, p, s, 0, 0, 0, 0)


def _rrow(image: str, method: str, luma: float, black: float = 5.0) -> RealRow:
    return RealRow("night", image, method, luma, black, 250, 40, 30, 1.0, 0.0, 2.0)


class TestSummaries:
    def test_synthetic_summary_and_losses(self) -> None:
        rows = [
            _srow("a", OURS, 30, 0.9),
            _srow("a", "LIME", 20, 0.95),
            _srow("b", OURS, 28, 0.8),
            _srow("b", "LIME", 29, 0.7),
            _srow("b", LUT_ORACLE, 40, 0.99),
            _srow("a", OURS, 10, 0.1, "gamma-2"),
        ]
        summary = synthetic_summary(rows)
        assert summary[("table2", "all", OURS)] == pytest.approx((29.0, 0.85))
        assert summary[("gamma-2", "d", OURS)] == pytest.approx((10.0, 0.1))
        # oracles see the reference: never counted as a loss
        assert losses_to_baselines(rows) == [("d/a", "LIME", "ssim"), ("d/b", "LIME", "psnr")]

    def test_real_summary_ranges_and_well_exposed_change(self) -> None:
        rows = [
            _rrow("a", INPUT, 40),
            _rrow("a", OURS, 120),
            _rrow("b", INPUT, 110),
            _rrow("b", OURS, 116),
            _rrow("c", INPUT, 130),
            _rrow("c", OURS, 160),
        ]
        s = real_summary(rows)[("all", OURS)]
        assert s["mean_luma"] == pytest.approx((120 + 116 + 160) / 3)
        assert s["in_range"] == pytest.approx(2 / 3)
        assert s["well_exposed_change"] == pytest.approx((6 + 30) / 2)
        assert s["well_exposed_count"] == 2

    def test_changes_name_what_improved_and_what_got_worse(self) -> None:
        before = Evaluation(
            [_srow("a", OURS, 30, 0.9), _srow("a", OURS, 20, 0.8, "gamma-2")],
            [_rrow("a", OURS, 120, black=30)],
        )
        after = Evaluation(
            [_srow("a", OURS, 29, 0.9), _srow("a", OURS, 25, 0.8, "gamma-2")],
            [_rrow("a", OURS, 120, black=10)],
        )
        better, worse = changes(before, after)
        assert better == ["gamma-2 PSNR 20.00 -> 25.00", "real photos black_point 30.0 -> 10.0"]
        assert worse == ["table2 PSNR 30.00 -> 29.00"]

    def test_csv_round_trip_and_old_reports(self, tmp_path: Path) -> None:
        rows = [_srow("a", OURS, 30.5, 0.9, "camera-2EV"), _srow("a", INPUT, 10.25, 0.5)]
        real = [_rrow("a", INPUT, 40), _rrow("a", OURS, 120)]
        write_csv(tmp_path / "synthetic.csv", rows)
        write_csv(tmp_path / "real.csv", real)
        back = read_rows(tmp_path)
        assert back.synthetic == rows and back.real == real
        old = tmp_path / "old"
        old.mkdir()
        (old / "synthetic.csv").write_text(
            "dataset,image,method,psnr,ssim,mse_h,mse_s,mse_v,mse_hsv\n"
            "d,a,best global gamma,31,0.9,0,0,0,0\n"
        )
        (old / "real.csv").write_text("dataset,image,method,mean_luma\nnight,a,ours,100\n")
        ev = read_rows(old)
        assert ev.synthetic == [_srow("a", GAMMA_ORACLE, 31, 0.9)]
        assert ev.real[0].mean_luma == 100 and math.isnan(ev.real[0].black_point)

    def test_newly_clipped_white(self) -> None:
        before = np.zeros((2, 2, 3), np.float32)
        before[0, 0] = 0.95  # already near white
        after = np.ones((2, 2, 3), np.float32)
        after[1, 1] = 0.5
        assert newly_clipped_white(before, after) == pytest.approx(2 / 4)


class TestReport:
    def test_real_photos_measured_and_sheets_drawn(
        self, data_root: Path, weights: Path, tmp_path: Path
    ) -> None:
        files = sorted((data_root / "lowlight/night").iterdir())
        rows, sheets = evaluate_real(
            Enhancer(weights),
            {"night": files},
            tmp_path / "s",
            sheet_limit=1,
            thumb_height=40,
        )
        assert {(r.image, r.method) for r in rows} == {
            (f.name, m) for f in files for m in (INPUT, OURS, "LIME")
        }
        assert [p.name for p in sheets] == ["night_1.png", "night_1_crops.png"]
        with Image.open(sheets[0]) as sheet:
            assert sheet.height < 40 * 3 and sheet.width > 3 * 40  # one row of three
        inputs = [r for r in rows if r.method == INPUT]
        assert all(r.new_white == 0 for r in inputs)  # the input against itself

    def test_peer_outputs_join_the_tables(
        self, data_root: Path, weights: Path, tmp_path: Path
    ) -> None:
        files = sorted((data_root / "lowlight/night").iterdir())
        peer = tmp_path / "peers" / "brightener" / "out_night"
        peer.mkdir(parents=True)
        for f in files[:1]:  # a peer that did only the first photo
            img = np.asarray(Image.open(f), dtype=np.float32) / 255
            Image.fromarray(np.round(np.sqrt(img) * 255).astype(np.uint8)).save(
                peer / f"{f.stem}.png"
            )
        rows, _ = evaluate_real(
            Enhancer(weights),
            {"night": files},
            tmp_path / "s",
            peers=tmp_path / "peers",
            with_lime=False,
        )
        got = {(r.image, r.method): r for r in rows}
        assert set(got) == {(f.name, m) for f in files for m in (INPUT, OURS)} | {
            (files[0].name, "brightener")
        }
        ours = got[(files[0].name, "brightener")]
        assert ours.mean_luma > got[(files[0].name, INPUT)].mean_luma + 20

    def test_lowlight_eval_writes_the_report(
        self, data_root: Path, weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = tmp_path / "report"
        args = [
            "eval",
            "--weights",
            str(weights),
            "--data-root",
            str(data_root),
            "--sets",
            "clean/val",
            "--real",
            "lowlight/night",
            "--no-progress",
            "--protocols",
            "table2",
            "camera-2EV",
        ]
        code = main([*args, "--out", str(out)])
        assert code == 0, capsys.readouterr().err
        printed = capsys.readouterr().out
        text = (out / "report.md").read_text()
        for needle in (
            "Table II protocol",
            "camera-2EV",
            "LUT oracle",
            "gamma oracle",
            "LIME",
            "MSE_hsv",
            "Real low-light photos",
            "lowlight/night",
            "![lowlight_night_1]",
            "![lowlight_night_1_crops]",
        ):
            assert needle in text, needle
            assert needle.startswith("![") or needle in printed, needle
        assert (out / "synthetic.csv").read_text().count("\n") == 1 + 3 * (7 + 4)
        assert (out / "real.csv").exists() and list((out / "sheets").glob("*.png"))
        # again against the first report: the same model changes nothing
        code = main([*args, "--out", str(tmp_path / "again"), "--baseline", str(out)])
        assert code == 0
        text = (tmp_path / "again" / "report.md").read_text()
        assert f"## Against {out}" in text
        assert "Improved:\n\n- nothing" in text and "Worse:\n\n- nothing" in text

    @pytest.mark.parametrize(
        "bad, needle",
        [
            (["--protocols", "gamma-9"], "unknown protocol"),
            (["--every", "0"], "--every"),
            (["--baseline", "/nonexistent"], "--baseline"),
        ],
    )
    def test_bad_options_are_usage_errors(
        self,
        bad: list[str],
        needle: str,
        weights: Path,
        data_root: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        code = main(
            [
                "eval",
                "--weights",
                str(weights),
                "--data-root",
                str(data_root),
                "--no-progress",
                *bad,
            ]
        )
        assert code == 2 and needle in capsys.readouterr().err

    def test_missing_data_is_a_usage_error(
        self, weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code = main(
            ["eval", "--weights", str(weights), "--data-root", str(tmp_path), "--no-progress"]
        )
        assert code == 2 and "--data-root" in capsys.readouterr().err
