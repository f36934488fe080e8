"""``lowlight enhance`` end to end on real files, with a tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hybridnet import HybridNet, HybridNetConfig, save_model
from hybridnet.enhancer import Enhancer
from hybridnet.imageio import read_image, write_image
from lowlight.cli import main


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_model(HybridNet(HybridNetConfig.tiny()),
                      tmp_path_factory.mktemp("w") / "tiny.safetensors")


def _dark(h: int = 48, w: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.1 + 0.1 * xx, 0.08 + 0.05 * yy, 0.05 + 0.05 * xx * yy], -1)
    return np.clip(img, 0, 1)


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["enhance", "-q", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


class TestOutputs:
    @pytest.mark.parametrize(
        ("name", "dtype", "channels"),
        [("a.jpg", np.uint8, 3), ("b.png", np.uint16, 3), ("c.png", np.uint8, 4),
         ("d.tif", np.uint16, 4), ("e.tif", np.float32, 3), ("f.webp", np.uint8, 3),
         ("g.bmp", np.uint8, 3), ("h.png", np.uint16, None), ("i.tiff", np.uint8, 2)],
    )
    def test_same_format_depth_and_alpha(
        self, tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str],
        name: str, dtype: type, channels: int | None,
    ) -> None:
        base = _dark()
        if channels is None:
            img = base[..., 1]
        elif channels == 2:
            img = np.stack([base[..., 1], np.linspace(0, 1, base[..., 1].size).reshape(
                base.shape[:2])], -1)
        elif channels == 4:
            img = np.concatenate([base, np.linspace(0, 1, base[..., 1].size).reshape(
                *base.shape[:2], 1)], -1)
        else:
            img = base
        if dtype is not np.float32:
            img = np.round(img * np.iinfo(dtype).max).astype(dtype)
        else:
            img = img.astype(np.float32)
        src = write_image(tmp_path / name, img)
        code, out, err = _run(capsys, src, "--weights", weights)
        assert code == 0, err
        target = tmp_path / f"{Path(name).stem}_enhanced{Path(name).suffix}"
        assert out.strip() == str(target)
        result = read_image(target).pixels
        original = read_image(src).pixels
        assert result.shape == original.shape and result.dtype == original.dtype
        if channels in (2, 4):
            assert np.array_equal(result[..., -1], original[..., -1])
        assert not np.array_equal(result, original)

    def test_metadata_kept(self, tmp_path: Path, weights: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
        im = Image.fromarray((_dark() * 255).astype(np.uint8))
        exif = Image.Exif()
        exif[0x010F] = "TestCam"
        im.save(tmp_path / "cam.jpg", quality=85, exif=exif, dpi=(300, 300))
        code, _, err = _run(capsys, tmp_path / "cam.jpg", "--weights", weights)
        assert code == 0, err
        meta = read_image(tmp_path / "cam_enhanced.jpg").metadata
        with Image.open(tmp_path / "cam_enhanced.jpg") as out:
            assert out.getexif()[0x010F] == "TestCam"
        assert meta.dpi == pytest.approx((300, 300))
        assert meta.jpeg_quality is not None and abs(meta.jpeg_quality - 85) <= 5

    def test_multipage_tiff_first_page_and_a_note(
        self, tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        pages = [Image.fromarray((_dark() * s).astype(np.uint8)) for s in (255, 128, 64)]
        pages[0].save(tmp_path / "scan.tif", save_all=True, append_images=pages[1:])
        code, _, err = _run(capsys, tmp_path / "scan.tif", "--weights", weights)
        assert code == 0, err
        assert "scan.tif: note: only the first of its 3 pages is enhanced" in err
        with Image.open(tmp_path / "scan_enhanced.tif") as out:
            assert out.n_frames == 1
        with Image.open(tmp_path / "scan.tif") as src:
            assert src.n_frames == 3
        code, _, err = _run(capsys, tmp_path / "scan_enhanced.tif", "--weights", weights)
        assert code == 0 and "pages" not in err

    def test_output_dir_and_o(self, tmp_path: Path, weights: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
        a = write_image(tmp_path / "a.png", (_dark() * 255).astype(np.uint8))
        b = write_image(tmp_path / "b.png", (_dark() * 200).astype(np.uint8))
        code, _, err = _run(capsys, a, b, "--output-dir", tmp_path / "out", "--weights", weights)
        assert code == 0, err
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
        code, _, err = _run(capsys, a, "-o", tmp_path / "a.tif", "--weights", weights)
        assert code == 0, err
        assert read_image(tmp_path / "a.tif").metadata.format == "TIFF"

    def test_strength_zero_and_auto(self, tmp_path: Path, weights: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
        src = write_image(tmp_path / "s.png", (_dark() * 255).astype(np.uint8))
        assert _run(capsys, src, "--strength", "0%", "--weights", weights)[0] == 0
        assert np.array_equal(read_image(tmp_path / "s_enhanced.png").pixels,
                              read_image(src).pixels)
        bright = write_image(tmp_path / "bright.png", np.full((40, 40, 3), 200, np.uint8))
        assert _run(capsys, bright, "--strength", "auto", "--weights", weights)[0] == 0
        assert np.array_equal(read_image(tmp_path / "bright_enhanced.png").pixels,
                              read_image(bright).pixels)


    @pytest.mark.parametrize("engine", [[], ["--no-worker"]])
    def test_brightness_reaches_the_network(self, tmp_path: Path, weights: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            engine: list[str]) -> None:
        pixels = (_dark() * 255).astype(np.uint8)
        src = write_image(tmp_path / "s.png", pixels)
        enhancer = Enhancer(weights, device="cpu")
        for b in ("1", "-0.5"):
            out = tmp_path / f"s{b}.png"
            assert _run(capsys, src, "--brightness", b, "-o", out, "--weights", weights,
                        *engine)[0] == 0
            got = read_image(out).pixels
            assert np.array_equal(got, enhancer.enhance(pixels, brightness=float(b)))
            assert not np.array_equal(got, enhancer.enhance(pixels))


class TestNeverOverwrite:
    def test_existing_output_kept(self, tmp_path: Path, weights: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
        src = write_image(tmp_path / "p.png", (_dark() * 255).astype(np.uint8))
        (tmp_path / "p_enhanced.png").write_bytes(b"user's file")
        code, _, err = _run(capsys, src, "--weights", weights)
        assert code == 1 and "--overwrite" in err
        assert (tmp_path / "p_enhanced.png").read_bytes() == b"user's file"
        assert _run(capsys, src, "--weights", weights, "--overwrite")[0] == 0
        assert (tmp_path / "p_enhanced.png").read_bytes() != b"user's file"

    def test_input_never_overwritten(self, tmp_path: Path, weights: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
        src = write_image(tmp_path / "p.png", (_dark() * 255).astype(np.uint8))
        before = src.read_bytes()
        code, _, err = _run(capsys, src, "-o", src, "--overwrite", "--weights", weights)
        assert code == 1 and "is an input file" in err
        code, _, err = _run(capsys, src, "--output-dir", tmp_path, "--overwrite",
                            "--weights", weights)
        assert code == 1 and "is an input file" in err
        assert src.read_bytes() == before


class TestBadInput:
    def test_each_problem_gets_one_clear_line(self, tmp_path: Path, weights: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
        good = write_image(tmp_path / "good.png", (_dark() * 255).astype(np.uint8))
        (tmp_path / "text.jpg").write_text("not an image")
        (tmp_path / "empty.png").write_bytes(b"")
        full = (tmp_path / "good.png").read_bytes()
        (tmp_path / "cut.png").write_bytes(full[: len(full) // 2])
        Image.new("CMYK", (20, 20), (10, 20, 30, 200)).save(tmp_path / "print.jpg")
        Image.new("P", (20, 20)).save(tmp_path / "palette.png")
        code, out, err = _run(
            capsys, good, tmp_path / "missing.png", tmp_path / "text.jpg",
            tmp_path / "empty.png", tmp_path / "cut.png", tmp_path / "print.jpg",
            tmp_path / "palette.png", "--weights", weights,
        )
        assert code == 1
        summary = err[err.index("failed:"):].splitlines()[1:]
        assert len(summary) == 4
        text = "\n".join(summary)
        for name in ("missing.png", "text.jpg", "empty.png", "cut.png"):
            assert name in text
            assert err.count(f"{name}:") == 1, err  # once, in the summary
        assert "no such file" in text and "truncated" in text
        # CMYK and palette files are converted (and the user is told so), not refused
        assert "print.jpg: note: CMYK" in err and "palette.png: note: palette" in err
        assert (tmp_path / "print_enhanced.jpg").exists()
        assert (tmp_path / "good_enhanced.png").exists()
        assert out.count("\n") == 3

    def test_unwritable_output_folder(self, tmp_path: Path, weights: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
        src = write_image(tmp_path / "p.png", (_dark() * 255).astype(np.uint8))
        blocker = tmp_path / "file"
        blocker.write_text("x")
        code, _, err = _run(capsys, src, "--output-dir", blocker / "sub", "--weights", weights)
        assert code == 2 and "cannot create the output folder" in err
        code, _, err = _run(capsys, src, "-o", blocker / "x.png", "--weights", weights)
        assert code == 1 and "p.png" in err

    def test_usage_errors(self, tmp_path: Path, weights: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
        a = write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
        assert _run(capsys, a, a, "-o", tmp_path / "x.png", "--weights", weights)[0] == 2
        with pytest.raises(SystemExit) as exc:
            main(["enhance", str(a), "--strength", "1.5"])
        assert exc.value.code == 2
        for bad in ("2", "bright"):
            with pytest.raises(SystemExit) as exc:
                main(["enhance", str(a), "--brightness", bad])
            assert exc.value.code == 2
            assert "brightness must be" in capsys.readouterr().err
        code, _, err = _run(capsys, a, "--weights", tmp_path / "none.safetensors")
        assert code == 2 and "does not exist" in err


class TestEvOption:
    """``--ev STOPS``: the brightness control in photographic stops (2 stops per unit)."""

    @pytest.mark.parametrize(("text", "brightness"), [
        ("+1", 0.5), ("1EV", 0.5), ("-0.5", -0.25), ("2", 1.0), (" -2 ev", -1.0)])
    def test_stops_become_the_brightness_that_carries_them(self, text: str,
                                                           brightness: float) -> None:
        from lowlight.cli import build_parser

        for command in (["enhance", "x.jpg"], ["batch", "in", "out"]):
            args = build_parser().parse_args([*command, f"--ev={text}"])
            assert args.brightness == brightness, (command, text)

    @pytest.mark.parametrize("bad", [["--ev=3"], ["--ev=bright"],
                                     ["--ev=1", "--brightness=0.5"]])
    def test_bad_or_twice_is_a_usage_error(self, bad: list[str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
        from lowlight.cli import build_parser

        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args(["enhance", "x.jpg", *bad])
        assert exc.value.code == 2 and "--ev" in capsys.readouterr().err

    def test_default_is_the_automatic_exposure(self) -> None:
        from lowlight.cli import build_parser

        assert build_parser().parse_args(["enhance", "x.jpg"]).brightness == 0.0
        assert build_parser().parse_args(["batch", "in", "out"]).brightness == 0.0
