"""The model shipped inside the package: it loads by default and it has learnt the task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hybridnet import Enhancer, load_model
from hybridnet.baselines import inverse_gamma
from hybridnet.degrade import table2_input
from hybridnet.enhancer import BUNDLED_WEIGHTS
from hybridnet.imageio import read_image, write_image
from hybridnet.metrics import psnr, ssim
from hybridnet.weights_io import read_metadata
from lowlight.cli import main


def _pink(rng: np.random.Generator, h: int, w: int, alpha: float) -> np.ndarray:
    """A 1/f^alpha random field with unit standard deviation (natural-image statistics)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fy**2 + fx**2)
    f[0, 0] = 1.0
    spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f ** (alpha / 2)
    spec[0, 0] = 0.0
    field = np.fft.irfft2(spec, s=(h, w))
    return field / field.std()


def scene(seed: int, h: int = 160, w: int = 224) -> np.ndarray:
    """A validation-like photo: objects with soft edges under smooth light, mild texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / h
    light = 0.75 + 0.25 * np.cos(2.0 * xx + rng.uniform(0, 6)) * np.cos(1.5 * yy)
    albedo = np.empty((h, w, 3))
    albedo[...] = rng.uniform(0.3, 0.7, 3)
    for _ in range(10):
        colour = rng.uniform(0.15, 0.85, 3)
        cy, cx = rng.uniform(0, 1), rng.uniform(0, w / h)
        radius = rng.uniform(0.08, 0.3)
        d = np.sqrt((yy - cy) ** 2 + ((xx - cx) * rng.uniform(0.5, 2)) ** 2)
        mask = np.clip((radius - d) * 40, 0, 1)[..., None]  # a soft edge
        albedo = albedo * (1 - mask) + colour * mask
    texture = 1 + 0.06 * _pink(rng, h, w, 2.5)[..., None]
    return np.clip(albedo * light[..., None] * texture, 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def enhancer() -> Enhancer:
    return Enhancer(device="cpu")  # the bundled weights, as every client gets them


class TestBundledWeights:
    def test_shipped_in_the_package(self) -> None:
        assert BUNDLED_WEIGHTS.is_file()
        assert BUNDLED_WEIGHTS.stat().st_size < 20 * 2**20
        meta = read_metadata(BUNDLED_WEIGHTS)
        assert meta["format"] == "hybridnet" and "train_config" in meta
        assert (BUNDLED_WEIGHTS.parent / "MODEL_CARD.md").is_file()
        assert load_model(BUNDLED_WEIGHTS).config is not None

    @pytest.mark.parametrize("seed", [0, 1])
    def test_beats_the_inverse_gamma_on_table2_inputs(self, enhancer: Enhancer, seed: int) -> None:
        clean = scene(seed)
        low = table2_input(clean, seed)  # gamma 3, noise sigma 0.01, 8 bits
        ours = enhancer.enhance(np.round(low * 255).astype(np.uint8)).astype(np.float32) / 255
        baseline = np.round(inverse_gamma(low, 3.0) * 255).astype(np.float32) / 255
        assert psnr(ours, clean) > psnr(baseline, clean) + 0.5
        assert ssim(ours, clean) > ssim(baseline, clean)

    @pytest.mark.parametrize(("gamma", "brightness"), [(4.0, 1.0), (2.0, -1.0)])
    def test_brightness_is_the_darkening_told(
        self, enhancer: Enhancer, gamma: float, brightness: float
    ) -> None:
        # a photo darker (gamma 4) or lighter (gamma 2) than the protocol's 3: telling the
        # network so through brightness = gamma - 3 brings back the clean photo better
        clean = scene(3)
        rng = np.random.default_rng(3)
        low = np.clip(clean.astype(np.float64) ** gamma + rng.normal(0, 0.01, clean.shape), 0, 1)
        low8 = np.round(low * 255).astype(np.uint8)
        told = enhancer.enhance(low8, brightness=brightness).astype(np.float32) / 255
        untold = enhancer.enhance(low8).astype(np.float32) / 255
        assert psnr(told, clean) > psnr(untold, clean) + 1.0
        assert abs(told.mean() - clean.mean()) < abs(untold.mean() - clean.mean())

    def test_tiles_leave_no_seam(self, enhancer: Enhancer) -> None:
        clean = scene(7, 420, 560)
        low = np.round(table2_input(clean, 7) * 65535).astype(np.uint16)
        whole = enhancer.enhance(low, tile_size=1024).astype(np.float64) / 65535
        tiled = enhancer.enhance(low, tile_size=200).astype(np.float64) / 65535
        assert psnr(whole, tiled) >= 40.0

    def test_readme_main_command(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """``lowlight enhance photo.jpg`` with the bundled model, through the worker."""
        dark = np.round(table2_input(scene(3, 240, 320), 3) * 255).astype(np.uint8)
        photo = write_image(tmp_path / "photo.jpg", dark)
        assert main(["enhance", "-q", str(photo)]) == 0, capsys.readouterr().err
        out = read_image(tmp_path / "photo_enhanced.jpg").pixels
        assert out.shape == dark.shape
        assert out.mean() > 2 * dark.mean()
