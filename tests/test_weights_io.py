"""save_model / load_model: safetensors with the config inside, and every way a file is bad."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from hybridnet import HybridNet, HybridNetConfig, WeightsError, load_model, save_model
from hybridnet.weights_io import read_metadata

TINY = HybridNetConfig.tiny()


@pytest.fixture
def saved(tmp_path: Path) -> tuple[HybridNet, Path]:
    torch.manual_seed(0)
    model = HybridNet(TINY).eval()
    path = save_model(model, tmp_path / "model.safetensors", metadata={"note": "test"})
    return model, path


class TestRoundTrip:
    def test_same_outputs_and_config(self, saved: tuple[HybridNet, Path]) -> None:
        model, path = saved
        loaded = load_model(path, device="cpu")
        assert loaded.config == TINY
        assert not loaded.training
        x = torch.rand(1, 3, 16, 20)
        with torch.no_grad():
            assert torch.equal(model(x), loaded(x))

    def test_metadata(self, saved: tuple[HybridNet, Path]) -> None:
        meta = read_metadata(saved[1])
        assert meta["format"] == "hybridnet"
        assert HybridNetConfig.from_json(meta["config"]) == TINY
        assert meta["note"] == "test"

    def test_no_pickle_inside(self, saved: tuple[HybridNet, Path]) -> None:
        data = saved[1].read_bytes()
        assert not data.startswith(b"PK") and b"\x80\x02" not in data[:16]

    def test_atomic_leaves_no_temp_files(self, saved: tuple[HybridNet, Path]) -> None:
        assert sorted(p.name for p in saved[1].parent.iterdir()) == ["model.safetensors"]

    def test_file_mode_follows_the_umask(self, tmp_path: Path) -> None:
        old = os.umask(0o022)
        try:
            path = save_model(HybridNet(TINY), tmp_path / "m.safetensors")
        finally:
            os.umask(old)
        assert path.stat().st_mode & 0o777 == 0o644

    def test_failed_save_keeps_previous_file(
        self, saved: tuple[HybridNet, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        model, path = saved
        before = path.read_bytes()

        def boom(*_a: object, **_k: object) -> None:
            raise OSError("disk full")

        monkeypatch.setattr("safetensors.torch.save_file", boom)
        with pytest.raises(OSError, match="disk full"):
            save_model(model, path)
        assert path.read_bytes() == before
        assert sorted(p.name for p in path.parent.iterdir()) == ["model.safetensors"]

    def test_reserved_metadata_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="reserved"):
            save_model(HybridNet(TINY), tmp_path / "m.safetensors", metadata={"config": "x"})


class TestBadFiles:
    def test_missing(self, tmp_path: Path) -> None:
        with pytest.raises(WeightsError, match="does not exist"):
            load_model(tmp_path / "nope.safetensors")

    def test_directory(self, tmp_path: Path) -> None:
        with pytest.raises(WeightsError, match="not a file"):
            load_model(tmp_path)

    @pytest.mark.parametrize("keep", [0.5, 0.999, 10])
    def test_truncated(self, saved: tuple[HybridNet, Path], keep: float) -> None:
        path = saved[1]
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)] if keep < 1 else data[: int(keep)])
        with pytest.raises(WeightsError, match="truncated or corrupt"):
            load_model(path)

    def test_random_bytes(self, tmp_path: Path) -> None:
        path = tmp_path / "noise.safetensors"
        path.write_bytes(os.urandom(4096))
        with pytest.raises(WeightsError, match="not a readable safetensors file"):
            load_model(path)

    def test_pickled_checkpoint(self, tmp_path: Path) -> None:
        path = tmp_path / "model.pth"
        torch.save(HybridNet(TINY).state_dict(), path)
        with pytest.raises(WeightsError, match="safetensors"):
            load_model(path)

    def test_foreign_safetensors(self, tmp_path: Path) -> None:
        from safetensors.torch import save_file

        path = tmp_path / "other.safetensors"
        save_file({"w": torch.zeros(3)}, str(path), metadata={"format": "pt"})
        with pytest.raises(WeightsError, match="not HybridNet weights"):
            load_model(path)

    def test_tensors_from_another_config(self, tmp_path: Path) -> None:
        from safetensors.torch import save_file

        other = HybridNet(HybridNetConfig(content_channels=(8, 8, 8)))
        path = tmp_path / "mixed.safetensors"
        save_file(
            dict(other.state_dict()),
            str(path),
            metadata={"format": "hybridnet", "format_version": "1", "config": TINY.to_json()},
        )
        with pytest.raises(WeightsError, match="does not match the config stored in it"):
            load_model(path)

    def test_expected_config_mismatch(self, saved: tuple[HybridNet, Path]) -> None:
        with pytest.raises(WeightsError, match="different configuration"):
            load_model(saved[1], expected_config=HybridNetConfig())

    def test_newer_format(self, tmp_path: Path) -> None:
        from safetensors.torch import save_file

        path = tmp_path / "future.safetensors"
        save_file(
            dict(HybridNet(TINY).state_dict()),
            str(path),
            metadata={"format": "hybridnet", "format_version": "99", "config": TINY.to_json()},
        )
        with pytest.raises(WeightsError, match="update the program"):
            load_model(path)

    def test_config_from_newer_version(self, tmp_path: Path) -> None:
        from safetensors.torch import save_file

        path = tmp_path / "future.safetensors"
        save_file(
            dict(HybridNet(TINY).state_dict()),
            str(path),
            metadata={
                "format": "hybridnet",
                "format_version": "1",
                "config": '{"content_channels": [4, 8, 8], "quantum": true}',
            },
        )
        with pytest.raises(WeightsError, match="config cannot be used"):
            load_model(path)
