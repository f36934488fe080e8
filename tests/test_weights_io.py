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


def _save_raw(model: HybridNet, path: Path, state: dict[str, torch.Tensor]) -> Path:
    """Write ``state`` under ``model``'s header as another tool might (no flushing)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    save_model(model, path)
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=meta)
    return path


class TestFlushTiny:
    """Weights below 1e-20 are exactly 0 once loaded: denormal products ran 3-4x slower.

    (The speed itself is measured by ``benchmarks/bench_model.py`` on the shipped
    weights, flushed and not: random weights made tiny do not reproduce the slowdown
    reliably enough for a timed test on a shared machine.)"""

    @staticmethod
    def _decayed(seed: int = 0) -> tuple[HybridNet, dict[str, torch.Tensor]]:
        """A default-size network whose weights are mostly tiny, as weight decay left the
        shipped model's (denormal-range values among them)."""
        torch.manual_seed(seed)
        model = HybridNet(HybridNetConfig.tiny())
        state = {}
        for k, v in model.state_dict().items():
            if v.is_floating_point() and v.ndim == 4:
                mask = torch.rand_like(v) < 0.8
                v = torch.where(mask, v.sign() * 1e-39, v)
            state[k] = v
        return model, state

    def test_tiny_weights_load_as_zero_and_the_rest_unchanged(self, tmp_path: Path) -> None:
        model, state = self._decayed()
        loaded = load_model(_save_raw(model, tmp_path / "d.safetensors", state))
        for k, v in loaded.state_dict().items():
            tiny = state[k].abs() < 1e-20
            assert (v[tiny] == 0).all(), k
            assert torch.equal(v[~tiny], state[k][~tiny]), k

    def test_saving_flushes_too(self, tmp_path: Path) -> None:
        from safetensors.torch import load_file

        model, state = self._decayed()
        model.load_state_dict(state)
        saved = load_file(str(save_model(model, tmp_path / "s.safetensors")))
        assert all(not ((t != 0) & (t.abs() < 1e-20)).any() for t in saved.values())

    def test_same_output_as_the_unflushed_weights(self, tmp_path: Path) -> None:
        model, state = self._decayed()
        model.load_state_dict(state)
        model.eval()
        loaded = load_model(_save_raw(model, tmp_path / "d.safetensors", state))
        x = torch.rand(1, 3, 40, 48)
        with torch.inference_mode():
            assert torch.equal(model(x), loaded(x))

    def test_the_enhancer_flushes_denormal_activations(self) -> None:
        """Activations (the RNN's decaying hidden state, dead channels) can fall into the
        denormal range whatever the weights: the enhancer flushes them while the network
        runs, and only then (numpy and hypothesis expect IEEE subnormals elsewhere)."""
        import numpy as np

        from hybridnet.enhancer import Enhancer

        seen: list[float] = []

        class Probe(HybridNet):
            def forward(self, image: torch.Tensor, curve: object = None) -> torch.Tensor:
                seen.append((torch.tensor([1e-30]) * torch.tensor([1e-10])).item())
                return image.clone()

        torch.set_flush_denormal(False)
        if (torch.tensor([1e-30]) * torch.tensor([1e-10])).item() == 0.0:
            pytest.fail("this CPU flushes denormals by itself: the check below proves nothing")
        model = Probe(HybridNetConfig.tiny())
        model.exposure = None  # the probe runs without the estimator
        Enhancer(model=model).enhance(np.full((16, 16, 3), 0.5, np.float32))
        assert seen == [0.0]
        assert (torch.tensor([1e-30]) * torch.tensor([1e-10])).item() != 0.0  # off again

    def test_non_finite_weights_are_refused(self, tmp_path: Path) -> None:
        model = HybridNet(HybridNetConfig.tiny())
        state = dict(model.state_dict())
        key = next(k for k, v in state.items() if v.is_floating_point())
        state[key] = state[key].clone()
        state[key].view(-1)[0] = float("nan")
        with pytest.raises(WeightsError, match="NaN or infinite weights"):
            load_model(_save_raw(model, tmp_path / "n.safetensors", state))
