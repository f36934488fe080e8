"""Tests for :mod:`hybridnet.imageio`: real files in every supported format and depth.

Every test writes actual files under ``tmp_path`` and reads them back, with an
independent decoder/encoder (Pillow, tifffile, a float64 colour reference) wherever the
module's own round trip could hide a bug on both sides.
"""

from __future__ import annotations

import errno
import io
import os
import struct
import subprocess
import sys
import tracemalloc
import warnings
import zlib
from pathlib import Path
from typing import Any

import _icc
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, PngImagePlugin, TiffImagePlugin

from hybridnet import imageio as iio
from hybridnet.imageio import (
    SUPPORTED_SUFFIXES,
    ImageFileError,
    ImageMetadata,
    output_format_for,
    read_image,
    read_rgb,
    write_image,
)

RNG_SEED = 20240611


# ----------------------------------------------------------------------------- helpers


def photo(
    shape: tuple[int, ...], dtype: Any, seed: int = RNG_SEED, noise: float = 0.02
) -> np.ndarray:
    """Smooth gradients plus noise: compresses like a photo, exercises every level."""
    rng = np.random.default_rng(seed)
    h, w = shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    channels = shape[2] if len(shape) == 3 else 1
    planes = [
        0.5 + 0.45 * np.sin(x / (7 + 3 * c) + y / (11 + c) + c) + rng.normal(0, noise, (h, w))
        for c in range(channels)
    ]
    base = np.clip(np.stack(planes, -1), 0, 1)
    if len(shape) == 2:
        base = base[..., 0]
    if np.dtype(dtype) == np.float32:
        return base.astype(np.float32)
    maxv = np.iinfo(dtype).max
    return np.round(base * maxv).astype(dtype)


def alpha_plane(h: int, w: int, dtype: Any, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype) == np.float32:
        return rng.random((h, w), dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max + 1, (h, w)).astype(dtype)


def make_exif(orientation: int = 6, model: str = "TestCam X1") -> bytes:
    ex = Image.Exif()
    ex[0x010F] = "TestMaker"  # Make
    ex[0x0110] = model  # Model
    ex[0x0112] = orientation  # Orientation
    ex.get_ifd(0x8769)[0x829A] = TiffImagePlugin.IFDRational(1, 250)  # ExposureTime
    ex.get_ifd(0x8769)[0x8827] = 3200  # ISO
    return ex.tobytes()[6:]  # without the "Exif\0\0" JPEG prefix


def exif_summary(exif: bytes | None) -> tuple[Any, Any, Any, float, Any]:
    assert exif is not None
    ex = Image.Exif()
    ex.load(exif)
    sub = ex.get_ifd(0x8769)
    return ex.get(0x010F), ex.get(0x0110), ex.get(0x0112), float(sub[0x829A]), sub.get(0x8827)


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def png_chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(ctype)) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


def handmade_png(width: int, height: int, idat: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(idat))
        + png_chunk(b"IEND", b"")
    )


def hidden_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def error_of(path: Path) -> str:
    with pytest.raises(ImageFileError) as info:
        read_image(path)
    message = str(info.value)
    assert "\n" not in message
    assert path.name in message
    return message


# ----------------------------------------------------------------------------- import


class TestImport:
    def test_import_does_not_pull_torch_zmq_qt_or_codecs(self) -> None:
        code = (
            "import sys, hybridnet.imageio\n"
            "bad = [m for m in ('torch', 'zmq', 'PyQt6', 'tifffile', 'imagecodecs')"
            " if m in sys.modules]\n"
            "print(','.join(bad) or 'clean')\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "clean"


# ----------------------------------------------------------------------------- suffixes


class TestOutputFormatFor:
    @pytest.mark.parametrize(
        ("name", "fmt"),
        [
            ("a.jpg", "JPEG"),
            ("a.JPEG", "JPEG"),
            ("a.png", "PNG"),
            ("dir.x/a.Tif", "TIFF"),
            ("a.tiff", "TIFF"),
            ("a.webp", "WEBP"),
            ("a.bmp", "BMP"),
        ],
    )
    def test_known_suffixes(self, name: str, fmt: str) -> None:
        assert output_format_for(name) == fmt

    def test_supported_suffixes_constant(self) -> None:
        assert frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"}) == (
            SUPPORTED_SUFFIXES
        )
        assert all(output_format_for(f"x{s}") for s in SUPPORTED_SUFFIXES)

    def test_unsupported_suffix(self) -> None:
        with pytest.raises(ImageFileError, match=r"a\.gif: unsupported file type '\.gif'; use"):
            output_format_for("a.gif")

    def test_missing_suffix(self) -> None:
        with pytest.raises(ImageFileError, match="no file extension"):
            output_format_for(Path("folder") / "photo")


# ----------------------------------------------------------------------------- PNG


class TestPng:
    @pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
    @pytest.mark.parametrize(("channels", "mode8"), [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
    def test_round_trip_bit_exact(
        self, tmp_path: Path, dtype: Any, channels: int, mode8: str
    ) -> None:
        shape = (37, 53) if channels == 1 else (37, 53, channels)
        pixels = photo(shape, dtype)
        if channels in (2, 4):
            pixels[..., -1] = alpha_plane(37, 53, dtype)
        target = tmp_path / "a.png"
        assert write_image(target, pixels) == target
        loaded = read_image(target)
        assert loaded.pixels.dtype == dtype
        np.testing.assert_array_equal(loaded.pixels, pixels)
        expected_mode = mode8 if dtype == np.uint8 else {1: "I;16"}.get(channels, f"{mode8};16")
        assert loaded.metadata.source_mode == expected_mode
        assert loaded.metadata.bit_depth == (8 if dtype == np.uint8 else 16)
        assert loaded.metadata.format == "PNG"
        assert loaded.path == target
        assert loaded.pixels.flags.c_contiguous and loaded.pixels.flags.writeable

    def test_16bit_ramp_keeps_more_than_256_levels(self, tmp_path: Path) -> None:
        ramp = np.linspace(0, 65535, 4096).round().astype(np.uint16)
        pixels = np.repeat(np.repeat(ramp[None, :, None], 8, axis=0), 3, axis=2)
        write_image(tmp_path / "ramp.png", pixels)
        loaded = read_image(tmp_path / "ramp.png").pixels
        assert len(np.unique(loaded)) > 256
        np.testing.assert_array_equal(loaded, pixels)

    def test_float32_is_written_as_16bit(self, tmp_path: Path) -> None:
        pixels = photo((20, 30, 3), np.float32)
        pixels[0, 0] = [-0.5, 1.5, np.nan]
        write_image(tmp_path / "f.png", pixels)
        loaded = read_image(tmp_path / "f.png").pixels
        assert loaded.dtype == np.uint16
        clipped = np.nan_to_num(np.clip(pixels, 0, 1)).astype(np.float64)
        expected = np.floor(clipped * 65535 + 0.5).astype(np.uint16)
        np.testing.assert_array_equal(loaded, expected)
        np.testing.assert_array_equal(loaded[0, 0], [0, 65535, 0])

    def test_pillow_decodes_our_files(self, tmp_path: Path) -> None:
        rgba = photo((21, 19, 4), np.uint8)
        gray16 = photo((21, 19), np.uint16)
        meta = ImageMetadata(format="PNG", exif=make_exif(), dpi=(300.0, 300.0))
        write_image(tmp_path / "rgba.png", rgba, meta)
        write_image(tmp_path / "gray16.png", gray16, meta)
        with Image.open(tmp_path / "rgba.png") as im:  # Pillow verifies chunk CRCs
            np.testing.assert_array_equal(np.asarray(im), rgba)
            assert im.info["dpi"] == pytest.approx((300, 300), abs=0.01)
            assert im.getexif()[0x0110] == "TestCam X1"
        with Image.open(tmp_path / "gray16.png") as im:
            assert im.mode.startswith("I")
            np.testing.assert_array_equal(np.asarray(im).astype(np.uint16), gray16)

    def test_reads_16bit_png_from_another_writer(self, tmp_path: Path) -> None:
        gray16 = photo((25, 40), np.uint16)
        Image.fromarray(gray16).save(tmp_path / "pil16.png")  # Pillow writes I;16 as 16-bit
        loaded = read_image(tmp_path / "pil16.png")
        assert loaded.pixels.dtype == np.uint16
        np.testing.assert_array_equal(loaded.pixels, gray16)

    def test_palette_with_transparency_becomes_rgba(self, tmp_path: Path) -> None:
        index = np.arange(6 * 8, dtype=np.uint8).reshape(6, 8) % 4
        im = Image.fromarray(index, "P")
        palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]
        im.putpalette(palette)
        im.info["transparency"] = 2
        im.save(tmp_path / "p.png", transparency=2)
        loaded = read_image(tmp_path / "p.png")
        assert loaded.metadata.converted_from == "palette"
        assert loaded.metadata.source_mode == "P->RGBA"
        table = np.array(palette, dtype=np.uint8).reshape(4, 3)
        np.testing.assert_array_equal(loaded.pixels[..., :3], table[index])
        np.testing.assert_array_equal(loaded.pixels[..., 3], np.where(index == 2, 0, 255))

    def test_gray_palette_stays_gray(self, tmp_path: Path) -> None:
        index = (np.arange(40, dtype=np.uint8).reshape(5, 8) * 6).astype(np.uint8)
        im = Image.fromarray(index, "P")
        im.putpalette([v for i in range(256) for v in (255 - i,) * 3])
        im.save(tmp_path / "g.png")
        loaded = read_image(tmp_path / "g.png")
        assert loaded.pixels.shape == (5, 8)
        np.testing.assert_array_equal(loaded.pixels, 255 - index)
        assert loaded.metadata.source_mode == "P->L"

    def test_one_bit_becomes_gray_uint8(self, tmp_path: Path) -> None:
        bits = (np.indices((9, 13)).sum(0) % 2).astype(bool)
        Image.fromarray(bits).save(tmp_path / "b.png")
        loaded = read_image(tmp_path / "b.png")
        assert loaded.pixels.dtype == np.uint8
        np.testing.assert_array_equal(loaded.pixels, np.where(bits, 255, 0))
        assert loaded.metadata.converted_from == "1-bit"

    def test_text_chunks_survive(self, tmp_path: Path) -> None:
        info = PngImagePlugin.PngInfo()
        info.add_text("Title", "Nacht")
        info.add_itxt("Comment", "Straße – ночь")
        Image.fromarray(photo((8, 8, 3), np.uint8)).save(tmp_path / "t.png", pnginfo=info)
        first = read_image(tmp_path / "t.png")
        assert dict(first.metadata.png_text) == {"Title": "Nacht", "Comment": "Straße – ночь"}
        write_image(tmp_path / "t2.png", first.pixels, first.metadata)
        with Image.open(tmp_path / "t2.png") as im:
            assert im.text == {"Title": "Nacht", "Comment": "Straße – ночь"}


# ----------------------------------------------------------------------------- TIFF


class TestTiff:
    @pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
    @pytest.mark.parametrize("channels", [1, 2, 3, 4])
    def test_round_trip_bit_exact(self, tmp_path: Path, dtype: Any, channels: int) -> None:
        shape = (31, 45) if channels == 1 else (31, 45, channels)
        pixels = photo(shape, dtype)
        if channels in (2, 4):
            pixels[..., -1] = alpha_plane(31, 45, dtype)
        write_image(tmp_path / "a.tif", pixels)
        loaded = read_image(tmp_path / "a.tif")
        assert loaded.pixels.dtype == dtype
        np.testing.assert_array_equal(loaded.pixels, pixels)
        with tifffile.TiffFile(tmp_path / "a.tif") as tif:  # independent reader
            np.testing.assert_array_equal(tif.asarray(), pixels)
            if channels in (2, 4):
                assert tif.pages.first.extrasamples == (2,)  # unassociated alpha

    def test_float_values_outside_0_1_are_kept(self, tmp_path: Path) -> None:
        pixels = np.array([[[-0.25, 0.5, 1.75]]], dtype=np.float32)
        write_image(tmp_path / "f.tif", pixels)
        np.testing.assert_array_equal(read_image(tmp_path / "f.tif").pixels, pixels)

    def test_lzw_planar_16bit_and_compression_kept(self, tmp_path: Path) -> None:
        pixels = photo((40, 50, 3), np.uint16)
        tifffile.imwrite(
            tmp_path / "src.tif",
            np.moveaxis(pixels, -1, 0),
            photometric="rgb",
            planarconfig="separate",
            compression="lzw",
            resolution=(240, 240),
            resolutionunit="INCH",
        )
        loaded = read_image(tmp_path / "src.tif")
        np.testing.assert_array_equal(loaded.pixels, pixels)
        assert loaded.metadata.tiff_compression == "LZW"
        assert loaded.metadata.dpi == (240.0, 240.0)
        write_image(tmp_path / "out.tif", loaded.pixels, loaded.metadata)
        with tifffile.TiffFile(tmp_path / "out.tif") as tif:
            assert tif.pages.first.compression.name == "LZW"
        np.testing.assert_array_equal(read_image(tmp_path / "out.tif").pixels, pixels)

    def test_resolution_in_centimetres(self, tmp_path: Path) -> None:
        tifffile.imwrite(
            tmp_path / "cm.tif",
            photo((4, 4), np.uint8),
            resolution=(100, 50),
            resolutionunit="CENTIMETER",
        )
        assert read_image(tmp_path / "cm.tif").metadata.dpi == (254.0, 127.0)

    def test_palette_one_bit_and_cmyk_are_converted(self, tmp_path: Path) -> None:
        index = (np.arange(12, dtype=np.uint8).reshape(3, 4)) % 3
        im = Image.fromarray(index, "P")
        im.putpalette([200, 0, 0, 0, 150, 0, 0, 0, 100])
        im.save(tmp_path / "p.tif")
        pal = read_image(tmp_path / "p.tif")
        assert pal.metadata.converted_from == "palette"
        np.testing.assert_array_equal(pal.pixels[0, :3], [[200, 0, 0], [0, 150, 0], [0, 0, 100]])

        bits = np.eye(5, dtype=bool)
        Image.fromarray(bits).save(tmp_path / "b.tif")
        one = read_image(tmp_path / "b.tif")
        np.testing.assert_array_equal(one.pixels, np.where(bits, 255, 0))
        assert one.metadata.converted_from == "1-bit"

        cmyk = np.zeros((2, 3, 4), dtype=np.uint8)
        cmyk[0, 0] = [255, 0, 0, 0]  # cyan
        cmyk[0, 1] = [0, 0, 0, 128]  # half black
        Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.tif")
        conv = read_image(tmp_path / "c.tif")
        assert conv.metadata.converted_from == "CMYK"
        assert conv.metadata.source_mode == "CMYK->RGB"
        np.testing.assert_array_equal(conv.pixels[0, 0], [0, 255, 255])
        np.testing.assert_array_equal(conv.pixels[0, 1], [127, 127, 127])
        np.testing.assert_array_equal(conv.pixels[1, 2], [255, 255, 255])

    def test_16bit_cmyk_keeps_16_bits(self, tmp_path: Path) -> None:
        cmyk = np.zeros((2, 2, 4), dtype=np.uint16)
        cmyk[0, 0, 3] = 1000  # a tiny bit of black: invisible in 8 bits
        tifffile.imwrite(tmp_path / "c16.tif", cmyk, photometric="separated")
        loaded = read_image(tmp_path / "c16.tif")
        assert loaded.pixels.dtype == np.uint16
        np.testing.assert_array_equal(loaded.pixels[0, 0], [64535] * 3)

    def test_associated_alpha_is_unpremultiplied(self, tmp_path: Path) -> None:
        colour = np.full((2, 2, 3), 200, dtype=np.uint8)
        alpha = np.array([[255, 128], [51, 0]], dtype=np.uint8)
        premultiplied = np.round(colour * (alpha[..., None] / 255.0)).astype(np.uint8)
        data = np.dstack([premultiplied, alpha])
        tifffile.imwrite(tmp_path / "pm.tif", data, photometric="rgb", extrasamples=["assocalpha"])
        loaded = read_image(tmp_path / "pm.tif")
        assert loaded.metadata.converted_from == "premultiplied alpha"
        np.testing.assert_array_equal(loaded.pixels[..., 3], alpha)
        assert np.abs(loaded.pixels[:, :, :3].astype(int)[alpha > 0] - 200).max() <= 3

    def test_32bit_integer_samples(self, tmp_path: Path) -> None:
        small = np.array([[0, 70], [65535, 1]], dtype=np.uint32)
        tifffile.imwrite(tmp_path / "u32.tif", small)
        loaded = read_image(tmp_path / "u32.tif")
        assert loaded.pixels.dtype == np.uint16
        np.testing.assert_array_equal(loaded.pixels, small)
        assert loaded.metadata.converted_from == "32-bit integer"
        tifffile.imwrite(tmp_path / "big.tif", small * 2)
        assert "do not fit 16 bits" in error_of(tmp_path / "big.tif")

    def test_first_page_of_multipage_file(self, tmp_path: Path) -> None:
        first, second = photo((6, 7, 3), np.uint8), photo((3, 3, 3), np.uint8, seed=1)
        with tifffile.TiffWriter(tmp_path / "multi.tif") as tw:
            tw.write(first, photometric="rgb")
            tw.write(second, photometric="rgb")
        loaded = read_image(tmp_path / "multi.tif")
        np.testing.assert_array_equal(loaded.pixels, first)
        assert loaded.metadata.pages == 2
        assert loaded.metadata.page_note is not None and "2 pages" in loaded.metadata.page_note
        single = write_image(tmp_path / "one.tif", first)
        assert read_image(single).metadata.pages == 1
        assert read_image(single).metadata.page_note is None

    def test_pages_counted_on_the_pillow_path(self, tmp_path: Path) -> None:
        # JPEG-compressed TIFF pages are decoded by Pillow, not tifffile
        first, second = photo((16, 16, 3), np.uint8), photo((16, 16, 3), np.uint8, seed=1)
        Image.fromarray(first).save(tmp_path / "ycc.tif", compression="jpeg", save_all=True,
                                    append_images=[Image.fromarray(second)])
        assert read_image(tmp_path / "ycc.tif").metadata.pages == 2

    def test_memory_stays_within_three_copies(self, tmp_path: Path) -> None:
        pixels = photo((1200, 1000, 3), np.uint16)
        nbytes = pixels.nbytes
        tracemalloc.start()
        try:
            write_image(tmp_path / "big.tif", pixels)
            _, write_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            loaded = read_image(tmp_path / "big.tif")
            _, read_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        np.testing.assert_array_equal(loaded.pixels, pixels)
        assert write_peak < 2.5 * nbytes
        assert read_peak < 3 * nbytes


# ----------------------------------------------------------------------------- JPEG


class TestJpeg:
    @pytest.mark.parametrize("shape", [(40, 56, 3), (40, 56)])
    def test_round_trip_close(self, tmp_path: Path, shape: tuple[int, ...]) -> None:
        pixels = photo(shape, np.uint8, noise=0.002)
        write_image(tmp_path / "a.jpg", pixels)
        loaded = read_image(tmp_path / "a.jpg")
        assert loaded.pixels.shape == pixels.shape
        assert np.abs(loaded.pixels.astype(int) - pixels).mean() < 2.0
        assert loaded.metadata.jpeg_quality == 95

    def test_quality_and_subsampling_kept(self, tmp_path: Path) -> None:
        Image.fromarray(photo((64, 64, 3), np.uint8)).save(
            tmp_path / "q80.jpg", quality=80, subsampling="4:2:2"
        )
        source = read_image(tmp_path / "q80.jpg")
        assert source.metadata.jpeg_quality == 80
        assert source.metadata.jpeg_subsampling == "4:2:2"
        write_image(tmp_path / "again.jpg", source.pixels, source.metadata)
        again = read_image(tmp_path / "again.jpg")
        assert again.metadata.jpeg_quality is not None
        assert abs(again.metadata.jpeg_quality - 80) <= 5
        assert again.metadata.jpeg_subsampling == "4:2:2"

    @pytest.mark.parametrize("quality", [30, 60, 90, 100])
    def test_quality_estimate_for_pillow_files(self, tmp_path: Path, quality: int) -> None:
        Image.fromarray(photo((16, 16, 3), np.uint8)).save(tmp_path / "q.jpg", quality=quality)
        assert read_image(tmp_path / "q.jpg").metadata.jpeg_quality == quality

    def test_explicit_quality_wins_and_default_is_444(self, tmp_path: Path) -> None:
        pixels = photo((32, 32, 3), np.uint8)
        write_image(tmp_path / "q50.jpg", pixels, quality=50)
        low = read_image(tmp_path / "q50.jpg").metadata
        assert low.jpeg_quality == 50
        assert low.jpeg_subsampling == "4:2:0"
        write_image(tmp_path / "default.jpg", pixels, ImageMetadata(format="PNG"))
        assert read_image(tmp_path / "default.jpg").metadata.jpeg_subsampling == "4:4:4"

    def test_transparency_is_refused_opaque_alpha_dropped(self, tmp_path: Path) -> None:
        rgba = photo((10, 10, 4), np.uint8)
        with pytest.raises(ImageFileError, match=r"cannot store transparency; save as \.png"):
            write_image(tmp_path / "a.jpg", rgba)
        assert not (tmp_path / "a.jpg").exists()
        rgba[..., 3] = 255
        write_image(tmp_path / "a.jpg", rgba)
        assert read_image(tmp_path / "a.jpg").pixels.shape == (10, 10, 3)

    def test_cmyk_jpeg_is_converted(self, tmp_path: Path) -> None:
        cmyk = np.zeros((16, 16, 4), dtype=np.uint8)
        cmyk[..., 1] = 255  # magenta
        Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.jpg", quality=100)
        loaded = read_image(tmp_path / "c.jpg")
        assert loaded.metadata.converted_from == "CMYK"
        assert np.abs(loaded.pixels[8, 8].astype(int) - [255, 0, 255]).max() <= 3


# ----------------------------------------------------------------------------- WebP & BMP


class TestWebp:
    def test_lossless_is_bit_exact_with_alpha(self, tmp_path: Path) -> None:
        rgba = photo((24, 30, 4), np.uint8)
        rgba[..., 3] = alpha_plane(24, 30, np.uint8)
        rgba[0, 0, 3] = 0  # colour under a fully transparent pixel must survive too
        write_image(tmp_path / "a.webp", rgba, quality=100)
        loaded = read_image(tmp_path / "a.webp")
        np.testing.assert_array_equal(loaded.pixels, rgba)
        assert loaded.metadata.webp_lossless is True
        write_image(tmp_path / "b.webp", loaded.pixels, loaded.metadata)  # stays lossless
        np.testing.assert_array_equal(read_image(tmp_path / "b.webp").pixels, rgba)

    def test_lossy_is_close_and_keeps_alpha(self, tmp_path: Path) -> None:
        rgba = photo((24, 30, 4), np.uint8, noise=0.002)
        write_image(tmp_path / "a.webp", rgba)
        loaded = read_image(tmp_path / "a.webp")
        assert loaded.metadata.webp_lossless is False
        assert np.abs(loaded.pixels[..., :3].astype(int) - rgba[..., :3]).mean() < 3
        np.testing.assert_array_equal(loaded.pixels[..., 3], rgba[..., 3])

    def test_gray_is_written_as_rgb(self, tmp_path: Path) -> None:
        gray = photo((12, 12), np.uint8)
        write_image(tmp_path / "g.webp", gray, quality=100)
        loaded = read_image(tmp_path / "g.webp").pixels
        assert loaded.shape == (12, 12, 3)
        np.testing.assert_array_equal(loaded, np.repeat(gray[..., None], 3, -1))

    def test_animation_is_refused(self, tmp_path: Path) -> None:
        frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
        frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:])
        assert "animated WebP is not supported" in error_of(tmp_path / "anim.webp")


class TestBmp:
    @pytest.mark.parametrize("shape", [(9, 14, 3), (9, 14)])
    def test_round_trip_bit_exact_with_dpi(self, tmp_path: Path, shape: tuple[int, ...]) -> None:
        pixels = photo(shape, np.uint8)
        write_image(tmp_path / "a.bmp", pixels, ImageMetadata(format="PNG", dpi=(300.0, 300.0)))
        loaded = read_image(tmp_path / "a.bmp")
        np.testing.assert_array_equal(loaded.pixels, pixels)
        assert loaded.metadata.dpi == (300.0, 300.0)

    def test_transparency_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ImageFileError, match="BMP cannot store transparency"):
            write_image(tmp_path / "a.bmp", photo((4, 4, 2), np.uint8))


class TestBitDepthReduction:
    """16-bit and float → 8-bit must round to nearest (checked on lossless BMP)."""

    def test_uint16_rounds_to_nearest(self, tmp_path: Path) -> None:
        values = np.array([[0, 128, 129, 257, 385, 386, 32896, 65407, 65408, 65535]], np.uint16)
        write_image(tmp_path / "a.bmp", values)
        expected = np.round(values / 257.0)
        np.testing.assert_array_equal(read_image(tmp_path / "a.bmp").pixels, expected)
        np.testing.assert_array_equal(expected[0, :3], [0, 0, 1])

    def test_float_rounds_and_clips(self, tmp_path: Path) -> None:
        values = np.array([[-1.0, 0.0, 0.5 / 255, 0.51 / 255, 0.5, 1.0, 7.0, np.nan]], np.float32)
        write_image(tmp_path / "f.bmp", values)
        np.testing.assert_array_equal(
            read_image(tmp_path / "f.bmp").pixels, [[0, 0, 1, 1, 128, 255, 255, 0]]
        )


# ----------------------------------------------------------------------------- metadata


class TestMetadata:
    @pytest.mark.parametrize(
        ("name", "dtype", "has_dpi"),
        [
            ("a.jpg", np.uint8, True),
            ("a.png", np.uint8, True),
            ("a16.png", np.uint16, True),
            ("a.tif", np.uint8, True),
            ("a16.tif", np.uint16, True),
            ("a.webp", np.uint8, False),
        ],
    )
    def test_exif_icc_dpi_xmp_kept(
        self, tmp_path: Path, name: str, dtype: Any, has_dpi: bool
    ) -> None:
        icc = srgb_icc()
        xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
        meta = ImageMetadata(
            format="JPEG",
            icc_profile=icc,
            exif=make_exif(),
            dpi=(300.0, 200.0),
            xmp=xmp,
            icc_handling="srgb",
        )
        pixels = photo((20, 28, 3), dtype)
        write_image(tmp_path / name, pixels, meta)
        loaded = read_image(tmp_path / name)
        assert exif_summary(loaded.metadata.exif) == (
            "TestMaker",
            "TestCam X1",
            6,
            pytest.approx(1 / 250),
            3200,
        )
        assert loaded.metadata.icc_profile == icc
        assert loaded.metadata.icc_handling == "srgb"
        assert loaded.metadata.colorspace == "sRGB"
        assert loaded.metadata.xmp is not None and b"adobe:ns:meta" in loaded.metadata.xmp
        assert loaded.metadata.dpi == ((300.0, 200.0) if has_dpi else None)
        if name.endswith(".tif"):  # an independent reader finds the Exif sub-IFD
            with tifffile.TiffFile(tmp_path / name) as tif:
                exif_ifd = tif.pages.first.tags["ExifTag"].value
                assert exif_ifd["ExposureTime"] == (1, 250)
                assert tif.pages.first.tags["Model"].value == "TestCam X1"

    def test_exif_orientation_is_not_applied(self, tmp_path: Path) -> None:
        pixels = photo((10, 30, 3), np.uint8)  # landscape as stored
        Image.fromarray(pixels).save(tmp_path / "o.jpg", exif=b"Exif\x00\x00" + make_exif(6))
        loaded = read_image(tmp_path / "o.jpg")
        assert loaded.pixels.shape == (10, 30, 3)
        for name in ("o2.jpg", "o2.png", "o2.tif", "o2.webp"):
            write_image(tmp_path / name, loaded.pixels, loaded.metadata)
            again = read_image(tmp_path / name)
            assert again.pixels.shape == (10, 30, 3)
            assert exif_summary(again.metadata.exif)[2] == 6

    def test_jpeg_source_metadata_moves_to_tiff(self, tmp_path: Path) -> None:
        Image.fromarray(photo((12, 12, 3), np.uint8)).save(
            tmp_path / "s.jpg",
            exif=b"Exif\x00\x00" + make_exif(3),
            dpi=(72, 72),
            icc_profile=srgb_icc(),
        )
        source = read_image(tmp_path / "s.jpg")
        write_image(tmp_path / "s.tif", source.pixels, source.metadata)
        out = read_image(tmp_path / "s.tif").metadata
        assert exif_summary(out.exif)[:3] == ("TestMaker", "TestCam X1", 3)
        assert out.dpi == (72.0, 72.0)
        assert out.icc_profile == source.metadata.icc_profile
        assert out.tiff_compression == "NONE"


# ----------------------------------------------------------------------------- colour


ADOBE = _icc.adobe_rgb_profile()
PATCHES = np.array(
    [[0, 255, 0], [0, 128, 0], [128, 128, 128], [200, 100, 50], [100, 150, 60],
     [255, 255, 255], [10, 20, 30], [255, 0, 0], [30, 60, 200]],
    dtype=np.uint8,
)  # fmt: skip


def adobe_png(path: Path, pixels: np.ndarray) -> None:
    Image.fromarray(pixels).save(path, icc_profile=ADOBE)


def imagecms_adobe_to_srgb(pixels: np.ndarray) -> np.ndarray:
    transform = ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(io.BytesIO(ADOBE)),
        ImageCms.createProfile("sRGB"),
        "RGB",
        "RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )
    out = ImageCms.applyTransform(Image.fromarray(pixels), transform)
    assert out is not None
    return np.asarray(out)


def in_gamut_adobe(shape: tuple[int, int], dtype: Any) -> np.ndarray:
    """Low-saturation mid-tones: inside the sRGB gamut, so round trips are not clipped."""
    base = photo((*shape, 3), np.float32)
    mean = base.mean(-1, keepdims=True)
    soft = 0.2 + 0.6 * (mean + 0.25 * (base - mean))
    if np.dtype(dtype) == np.float32:
        return soft.astype(np.float32)
    return np.round(soft * np.iinfo(dtype).max).astype(dtype)


def write_raw16(path: Path, pixels: np.ndarray, icc: bytes) -> None:
    """Write 16-bit samples untouched with an embedded profile (no colour management)."""
    if path.suffix == ".tif":
        tifffile.imwrite(path, pixels, photometric="rgb", iccprofile=icc)
        return
    import imagecodecs

    data = bytes(imagecodecs.png_encode(pixels))
    iccp = png_chunk(b"iCCP", b"test\x00\x00" + zlib.compress(icc))
    path.write_bytes(data[:33] + iccp + data[33:])  # after signature + IHDR


def read_raw16(path: Path) -> tuple[np.ndarray, bytes | None]:
    """Samples and profile of a 16-bit file, without colour management."""
    if path.suffix == ".tif":
        with tifffile.TiffFile(path) as tif:
            return tif.asarray(), tif.pages.first.iccprofile
    import imagecodecs

    with Image.open(path) as im:  # Pillow parses iCCP; imagecodecs gives 16-bit samples
        icc = im.info.get("icc_profile")
    return np.asarray(imagecodecs.png_decode(path.read_bytes())), icc


class TestColourManagement:
    def test_adobe_rgb_is_converted_to_srgb_on_read(self, tmp_path: Path) -> None:
        adobe_png(tmp_path / "a.png", PATCHES[None])
        loaded = read_image(tmp_path / "a.png")
        expected_cms = imagecms_adobe_to_srgb(PATCHES[None])
        expected_ref = 255 * _icc.reference_to_srgb(
            PATCHES[None] / 255.0, _icc.ADOBE_RGB_PRIMARIES, _icc.ADOBE_RGB_GAMMA
        )
        got = loaded.pixels.astype(int)
        assert np.abs(got - expected_cms).max() <= 1
        assert np.abs(got - expected_ref).max() <= 1
        np.testing.assert_array_equal(got[0, 0], [0, 255, 0])  # pure green clips to sRGB green
        assert not np.array_equal(got, PATCHES[None])  # it really converted
        meta = loaded.metadata
        assert meta.icc_handling == "converted"
        assert meta.colorspace == "Adobe RGB (1998) test"
        assert meta.icc_profile == ADOBE

    @pytest.mark.parametrize(("name", "dtype"), [("a.png", np.uint8), ("b.tif", np.uint8)])
    def test_8bit_round_trip_within_one_level(self, tmp_path: Path, name: str, dtype: Any) -> None:
        original = in_gamut_adobe((40, 50), dtype)
        if name.endswith(".png"):
            adobe_png(tmp_path / name, original)
        else:
            tifffile.imwrite(tmp_path / name, original, photometric="rgb", iccprofile=ADOBE)
        loaded = read_image(tmp_path / name)
        assert np.abs(loaded.pixels.astype(int) - original).max() >= 2  # converted
        write_image(tmp_path / f"out{name}", loaded.pixels, loaded.metadata)
        with Image.open(tmp_path / f"out{name}") as im:  # raw samples, no colour management
            raw = np.asarray(im)
            assert im.info.get("icc_profile") == ADOBE
        assert np.abs(raw.astype(int) - original).max() <= 1

    @pytest.mark.parametrize("name", ["a16.png", "a16.tif"])
    def test_16bit_round_trip_is_precise(self, tmp_path: Path, name: str) -> None:
        original = in_gamut_adobe((30, 40), np.uint16)
        path = tmp_path / name
        write_raw16(path, original, ADOBE)
        loaded = read_image(path)
        assert loaded.pixels.dtype == np.uint16
        expected = 65535 * _icc.reference_to_srgb(
            original / 65535.0, _icc.ADOBE_RGB_PRIMARIES, _icc.ADOBE_RGB_GAMMA
        )
        assert np.abs(loaded.pixels - expected).max() <= 2  # of 65535
        out = tmp_path / f"out{name}"
        write_image(out, loaded.pixels, loaded.metadata)
        raw, icc = read_raw16(out)
        assert icc == ADOBE
        assert np.abs(raw.astype(int) - original).max() <= 2

    def test_float_tiff_is_converted_and_back(self, tmp_path: Path) -> None:
        original = in_gamut_adobe((20, 20), np.float32)
        tifffile.imwrite(tmp_path / "f.tif", original, photometric="rgb", iccprofile=ADOBE)
        loaded = read_image(tmp_path / "f.tif")
        assert loaded.pixels.dtype == np.float32
        expected = _icc.reference_to_srgb(
            original.astype(np.float64), _icc.ADOBE_RGB_PRIMARIES, _icc.ADOBE_RGB_GAMMA
        )
        assert np.abs(loaded.pixels - expected).max() < 5e-5
        write_image(tmp_path / "g.tif", loaded.pixels, loaded.metadata)
        assert np.abs(tifffile.imread(tmp_path / "g.tif") - original).max() < 1e-5

    def test_alpha_is_bit_exact_through_conversion(self, tmp_path: Path) -> None:
        rgba = np.dstack([in_gamut_adobe((16, 16), np.uint16), alpha_plane(16, 16, np.uint16)])
        tifffile.imwrite(
            tmp_path / "a.tif",
            rgba,
            photometric="rgb",
            extrasamples=["unassalpha"],
            iccprofile=ADOBE,
        )
        loaded = read_image(tmp_path / "a.tif")
        assert loaded.metadata.icc_handling == "converted"
        np.testing.assert_array_equal(loaded.pixels[..., 3], rgba[..., 3])
        write_image(tmp_path / "b.tif", loaded.pixels, loaded.metadata)
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "b.tif")[..., 3], rgba[..., 3])

    def test_srgb_profile_is_not_converted(self, tmp_path: Path) -> None:
        pixels = photo((10, 10, 3), np.uint8)
        icc = srgb_icc()
        Image.fromarray(pixels).save(tmp_path / "s.png", icc_profile=icc)
        loaded = read_image(tmp_path / "s.png")
        np.testing.assert_array_equal(loaded.pixels, pixels)
        assert loaded.metadata.icc_handling == "srgb"
        assert loaded.metadata.colorspace == "sRGB"
        write_image(tmp_path / "t.png", loaded.pixels, loaded.metadata)
        with Image.open(tmp_path / "t.png") as im:
            assert im.info["icc_profile"] == icc
            np.testing.assert_array_equal(np.asarray(im), pixels)

    def test_gray_profile_stays_gray(self, tmp_path: Path) -> None:
        gray = np.arange(0, 256, 8, dtype=np.uint8).reshape(4, 8)
        profile = _icc.gray_profile(1.8, "Gray Gamma 1.8 test")
        Image.fromarray(gray).save(tmp_path / "g.png", icc_profile=profile)
        loaded = read_image(tmp_path / "g.png")
        assert loaded.pixels.shape == gray.shape
        expected = 255 * _icc.srgb_encode((gray / 255.0) ** 1.8)
        assert np.abs(loaded.pixels - expected).max() <= 1
        assert loaded.metadata.colorspace == "Gray Gamma 1.8 test"
        write_image(tmp_path / "h.png", loaded.pixels, loaded.metadata)
        with Image.open(tmp_path / "h.png") as im:
            assert im.info["icc_profile"] == profile
            assert np.abs(np.asarray(im).astype(int) - gray).max() <= 1

    def test_mismatched_profile_is_ignored(self, tmp_path: Path) -> None:
        pixels = photo((6, 6, 3), np.uint8)
        tifffile.imwrite(
            tmp_path / "m.tif", pixels, photometric="rgb", iccprofile=_icc.gray_profile(2.2)
        )
        loaded = read_image(tmp_path / "m.tif")
        np.testing.assert_array_equal(loaded.pixels, pixels)
        assert loaded.metadata.icc_handling == "ignored"
        assert "ignored" in loaded.metadata.colorspace
        write_image(tmp_path / "n.png", loaded.pixels, loaded.metadata)
        assert read_image(tmp_path / "n.png").metadata.icc_profile is None

    def test_gray_to_webp_drops_gray_profile(self, tmp_path: Path) -> None:
        profile = _icc.gray_profile(1.8)
        meta = ImageMetadata(format="PNG", icc_profile=profile, icc_handling="converted")
        write_image(tmp_path / "g.webp", photo((8, 8), np.uint8), meta, quality=100)
        assert read_image(tmp_path / "g.webp").metadata.icc_profile is None


# ----------------------------------------------------------------------------- atomicity


class TestReadRgb:
    """``read_rgb``: any readable file as float RGB in [0, 1] (training and evaluation)."""

    def test_16_bit_gray_keeps_its_scale(self, tmp_path: Path) -> None:
        gray = photo((20, 30), np.uint16)
        Image.fromarray(gray).save(tmp_path / "g.png")  # Pillow mode I;16
        rgb = read_rgb(tmp_path / "g.png")
        assert rgb.shape == (20, 30, 3) and rgb.dtype == np.float32
        np.testing.assert_allclose(rgb, np.repeat(gray[..., None] / 65535.0, 3, 2), atol=1e-6)

    def test_16_bit_rgb_tiff(self, tmp_path: Path) -> None:
        pixels = photo((16, 24, 3), np.uint16)
        tifffile.imwrite(tmp_path / "c.tif", pixels, photometric="rgb")
        np.testing.assert_allclose(read_rgb(tmp_path / "c.tif"), pixels / 65535.0, atol=1e-6)

    def test_alpha_dropped_and_8_bit_exact(self, tmp_path: Path) -> None:
        pixels = photo((12, 10, 4), np.uint8)
        Image.fromarray(pixels, "RGBA").save(tmp_path / "a.png")
        assert np.array_equal(read_rgb(tmp_path / "a.png"), pixels[..., :3] / np.float32(255))

    def test_adobe_rgb_is_converted(self, tmp_path: Path) -> None:
        adobe_png(tmp_path / "a.png", PATCHES[None])
        got = read_rgb(tmp_path / "a.png")
        expected = imagecms_adobe_to_srgb(PATCHES[None]) / 255.0
        assert np.abs(got - expected).max() <= 2 / 255
        assert np.abs(got - PATCHES[None] / 255.0).max() > 20 / 255  # not read as sRGB

    def test_max_side_box_downscale(self, tmp_path: Path) -> None:
        pixels = photo((40, 60, 3), np.uint8)
        Image.fromarray(pixels).save(tmp_path / "p.png")
        small = read_rgb(tmp_path / "p.png", max_side=30)
        expected = np.asarray(Image.fromarray(pixels).resize((30, 20), Image.Resampling.BOX))
        assert np.array_equal(small, expected / np.float32(255))
        assert read_rgb(tmp_path / "p.png", max_side=60).shape == (40, 60, 3)  # not larger

    def test_max_side_16_bit_averages_in_float(self, tmp_path: Path) -> None:
        pixels = photo((40, 60), np.uint16)
        Image.fromarray(pixels).save(tmp_path / "g.png")
        small = read_rgb(tmp_path / "g.png", max_side=30)
        blocks = pixels.reshape(20, 2, 30, 2).mean(axis=(1, 3)) / 65535.0
        assert small.shape == (20, 30, 3)
        np.testing.assert_allclose(small[..., 1], blocks, atol=1 / 65535)

    def test_unreadable_file_is_a_clear_error(self, tmp_path: Path) -> None:
        (tmp_path / "x.png").write_bytes(b"not an image")
        with pytest.raises(ImageFileError, match=r"x\.png"):
            read_rgb(tmp_path / "x.png")


class TestAtomicWrite:
    @staticmethod
    def _failing_png(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
        def boom(fh: Any, *args: Any) -> None:
            fh.write(b"\x89PNG partial data")
            raise exc

        monkeypatch.setitem(iio._ENCODERS, "PNG", boom)

    def test_failure_leaves_nothing_behind(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self._failing_png(monkeypatch, RuntimeError("disk exploded"))
        with pytest.raises(ImageFileError, match=r"encoder failed.*disk exploded"):
            write_image(tmp_path / "a.png", photo((4, 4), np.uint8))
        assert list(tmp_path.iterdir()) == []

    def test_failure_keeps_existing_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        target = tmp_path / "a.png"
        write_image(target, photo((4, 4), np.uint8))
        before = target.read_bytes()
        self._failing_png(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
        with pytest.raises(ImageFileError, match="the disk is full"):
            write_image(target, photo((4, 4), np.uint8, seed=3), overwrite=True)
        assert target.read_bytes() == before
        assert hidden_files(tmp_path) == []

    def test_interrupt_cleans_up(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self._failing_png(monkeypatch, KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            write_image(tmp_path / "a.png", photo((4, 4), np.uint8))
        assert list(tmp_path.iterdir()) == []

    def test_overwrite_protection(self, tmp_path: Path) -> None:
        target = tmp_path / "a.png"
        write_image(target, photo((4, 4), np.uint8))
        before = target.read_bytes()
        with pytest.raises(FileExistsError, match="already exists; choose another name"):
            write_image(target, photo((4, 4), np.uint8, seed=5))
        assert target.read_bytes() == before
        write_image(target, photo((4, 4), np.uint8, seed=5), overwrite=True)
        assert target.read_bytes() != before
        assert hidden_files(tmp_path) == []

    @pytest.mark.parametrize("hard_links", [True, False])
    def test_file_appearing_during_encode_is_not_clobbered(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hard_links: bool
    ) -> None:
        target = tmp_path / "a.png"
        real = iio._ENCODERS["PNG"]

        def racing(fh: Any, *args: Any) -> None:
            real(fh, *args)
            target.write_bytes(b"someone else")

        monkeypatch.setitem(iio._ENCODERS, "PNG", racing)
        if not hard_links:
            monkeypatch.setattr(iio.os, "link", self._no_link)
        with pytest.raises(FileExistsError):
            write_image(target, photo((4, 4), np.uint8))
        assert target.read_bytes() == b"someone else"
        assert hidden_files(tmp_path) == []

    def test_without_hard_links_still_writes(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(iio.os, "link", self._no_link)
        pixels = photo((5, 5, 3), np.uint8)
        write_image(tmp_path / "a.png", pixels)
        np.testing.assert_array_equal(read_image(tmp_path / "a.png").pixels, pixels)
        assert hidden_files(tmp_path) == []

    @staticmethod
    def _no_link(src: Any, dst: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    def test_unwritable_folder(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        def denied(*args: Any, **kwargs: Any) -> Any:
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(iio, "open", denied, raising=False)
        with pytest.raises(ImageFileError, match=r"the folder .* is not writable; choose"):
            write_image(tmp_path / "a.png", photo((4, 4), np.uint8))

    @pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions"
    )
    def test_unwritable_folder_for_real(self, tmp_path: Path) -> None:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        try:
            with pytest.raises(ImageFileError, match="is not writable"):
                write_image(folder / "a.png", photo((4, 4), np.uint8))
        finally:
            folder.chmod(0o755)

    def test_missing_folder_and_folder_target(self, tmp_path: Path) -> None:
        with pytest.raises(ImageFileError, match="does not exist; create it"):
            write_image(tmp_path / "nope" / "a.png", photo((4, 4), np.uint8))
        (tmp_path / "d.png").mkdir()
        with pytest.raises(ImageFileError, match="is a folder"):
            write_image(tmp_path / "d.png", photo((4, 4), np.uint8), overwrite=True)


# ----------------------------------------------------------------------------- bad input


class TestBadInput:
    def test_missing_file(self, tmp_path: Path) -> None:
        assert "no such file; check the name" in error_of(tmp_path / "ghost.jpg")

    def test_directory(self, tmp_path: Path) -> None:
        (tmp_path / "dir.png").mkdir()
        assert "is a folder, not an image file" in error_of(tmp_path / "dir.png")

    def test_empty_file(self, tmp_path: Path) -> None:
        (tmp_path / "e.png").write_bytes(b"")
        assert "the file is empty (0 bytes)" in error_of(tmp_path / "e.png")

    def test_text_named_jpg(self, tmp_path: Path) -> None:
        (tmp_path / "notes.jpg").write_text("Dear diary, today I took a photo.\n")
        assert "the file contains text, not image data" in error_of(tmp_path / "notes.jpg")

    def test_binary_garbage(self, tmp_path: Path) -> None:
        (tmp_path / "x.png").write_bytes(bytes(range(256)) * 4)
        assert "not an image file" in error_of(tmp_path / "x.png")

    def test_other_image_format(self, tmp_path: Path) -> None:
        Image.new("RGB", (4, 4)).save(tmp_path / "g.png", format="GIF")
        assert "GIF files are not supported; convert it" in error_of(tmp_path / "g.png")

    def test_raw_suffix(self, tmp_path: Path) -> None:
        tifffile.imwrite(tmp_path / "IMG_1.CR2", photo((4, 4), np.uint8))
        assert "camera RAW files are not supported" in error_of(tmp_path / "IMG_1.CR2")

    @pytest.mark.parametrize(
        ("name", "dtype"),
        [("a.jpg", np.uint8), ("a.png", np.uint8), ("a16.png", np.uint16),
         ("a.tif", np.uint16), ("a.webp", np.uint8), ("a.bmp", np.uint8)],
    )  # fmt: skip
    def test_truncated(self, tmp_path: Path, name: str, dtype: Any) -> None:
        path = tmp_path / name
        write_image(path, photo((64, 64, 3), dtype))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
        assert "the file is truncated (" in error_of(path)
        assert "re-export or re-download it" in error_of(path)

    def test_damaged_png_data(self, tmp_path: Path) -> None:
        ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0))
        garbage = png_chunk(b"IDAT", b"this is not deflate data")
        path = tmp_path / "d.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + garbage + png_chunk(b"IEND", b""))
        assert "the file is damaged or not a valid PNG image (" in error_of(path)
        good = handmade_png(4, 4, bytes(range(20)))
        body = bytearray(good)
        body[-20] ^= 0xFF  # last byte of the deflate stream's Adler-32 checksum
        path.write_bytes(bytes(body))
        assert "the file is damaged" in error_of(path)

    def test_zero_size_images(self, tmp_path: Path) -> None:
        (tmp_path / "z.png").write_bytes(handmade_png(0, 5))
        assert "the image has no pixels (0×5)" in error_of(tmp_path / "z.png")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "nonconformant TIFF"
            tifffile.imwrite(tmp_path / "z.tif", np.zeros((0, 0), np.uint8))
        assert "has no pixels" in error_of(tmp_path / "z.tif")

    def test_unsupported_sample_type(self, tmp_path: Path) -> None:
        tifffile.imwrite(tmp_path / "c.tif", np.zeros((4, 4), np.complex64))
        assert "unsupported TIFF sample type complex64" in error_of(tmp_path / "c.tif")
        tifffile.imwrite(tmp_path / "neg.tif", np.array([[-5, 3]], np.int16))
        assert "16-bit integer samples (-5..3) do not fit" in error_of(tmp_path / "neg.tif")

    def test_too_many_pixels(self, tmp_path: Path) -> None:
        (tmp_path / "huge.png").write_bytes(handmade_png(50_000, 40_000))
        assert "the image is too large (50000×40000" in error_of(tmp_path / "huge.png")

    def test_animated_png_is_refused(self, tmp_path: Path) -> None:
        frames = [Image.new("RGB", (4, 4), c) for c in ("red", "green")]
        frames[0].save(tmp_path / "a.png", save_all=True, append_images=frames[1:])
        assert "animated PNG is not supported" in error_of(tmp_path / "a.png")

    @pytest.mark.slow
    def test_large_panorama_beyond_pillow_limit_reads(self, tmp_path: Path) -> None:
        side = 9500  # 90.25 MP > Pillow's 89.5 MP warning threshold
        Image.new("L", (side, side)).save(tmp_path / "pano.png", compress_level=1)
        limit = Image.MAX_IMAGE_PIXELS
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            loaded = read_image(tmp_path / "pano.png")
        assert loaded.pixels.shape == (side, side)
        assert Image.MAX_IMAGE_PIXELS == limit

    @pytest.mark.parametrize(
        ("pixels", "message"),
        [
            (np.zeros((4, 4, 5), np.uint8), "must be H×W, H×W×2"),
            (np.zeros((4, 4), np.int32), "must be uint8, uint16 or float32"),
            (np.zeros((0, 4), np.uint8), "has no pixels"),
            ([[1, 2]], "must be a numpy array"),
        ],
    )
    def test_invalid_pixels_on_write(self, tmp_path: Path, pixels: Any, message: str) -> None:
        with pytest.raises(ImageFileError, match=message):
            write_image(tmp_path / "a.png", pixels)
        assert list(tmp_path.iterdir()) == []

    def test_write_suffix_format_and_quality_checks(self, tmp_path: Path) -> None:
        pixels = photo((4, 4, 3), np.uint8)
        with pytest.raises(ImageFileError, match=r"unsupported file type '\.gif'"):
            write_image(tmp_path / "a.gif", pixels)
        with pytest.raises(ImageFileError, match="unsupported format 'GIF'"):
            write_image(tmp_path / "a.png", pixels, format="GIF")
        with pytest.raises(ImageFileError, match="quality must be an integer from 1 to 100"):
            write_image(tmp_path / "a.jpg", pixels, quality=0)
        write_image(tmp_path / "a.dat", pixels, format="png")
        loaded = read_image(tmp_path / "a.dat")
        assert loaded.metadata.format == "PNG"
        np.testing.assert_array_equal(loaded.pixels, pixels)


class TestRemoveLinkedTemporaries:
    def test_only_links_of_their_target_go(self, tmp_path: Path) -> None:
        from hybridnet.imageio import remove_linked_temporaries

        target = tmp_path / "a.png"
        target.write_bytes(b"result")
        linked = tmp_path / ".a.png.tmp-000000000000"
        os.link(target, linked)
        partial = tmp_path / ".b.png.tmp-111111111111"  # b.png does not exist
        partial.write_bytes(b"half")
        copy = tmp_path / ".c.png.tmp-222222222222"  # same bytes, another inode
        (tmp_path / "c.png").write_bytes(b"result")
        copy.write_bytes(b"result")
        assert remove_linked_temporaries(tmp_path) == [linked]
        assert target.read_bytes() == b"result" and partial.exists() and copy.exists()
        assert remove_linked_temporaries(tmp_path / "missing") == []
