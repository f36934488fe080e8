"""``scripts/widen_model.py``: a wider content stream that starts out computing the same."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

from hybridnet import HybridNet, HybridNetConfig, load_model, save_model
from hybridnet.weights_io import read_metadata

ROOT = Path(__file__).resolve().parent.parent


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("widen_model",
                                                  ROOT / "scripts" / "widen_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trained_like() -> HybridNet:
    """A tiny network with non-zero everything (biases too), as after training."""
    torch.manual_seed(1)
    model = HybridNet(HybridNetConfig.tiny())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


class TestWiden:
    def test_same_output_wider_network(self) -> None:
        old = _trained_like()
        new = _script().widen(old, 12, 16)
        assert new.config.content_channels == (4, 12, 16)
        assert new.config.edge_channels == old.config.edge_channels
        x = torch.rand(2, 3, 48, 72)
        with torch.no_grad():
            torch.testing.assert_close(new(x), old(x), atol=1e-5, rtol=1e-5)
        added = new.content.enc3.convs[0].weight[8:]
        assert added.abs().sum() > 0 and not torch.equal(added[0], added[1])

    def test_added_channels_learn(self) -> None:
        new = _script().widen(_trained_like(), 12, 16).train()
        opt = torch.optim.Adam(new.parameters(), lr=1e-3)
        x, target = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
        dec2 = new.content.dec2.convs[0].weight
        reads_added = dec2[:8, 8:16].detach().clone()  # old rows reading added 1/8 channels
        assert reads_added.abs().sum() == 0
        for _ in range(2):
            opt.zero_grad()
            torch.nn.functional.mse_loss(new(x), target).backward()
            opt.step()
        assert dec2[:8, 8:16].abs().sum() > 0

    def test_only_wider(self) -> None:
        with pytest.raises(ValueError, match="only widen"):
            _script().widen(_trained_like(), 4, 16)

    def test_command_line(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        src = save_model(_trained_like(), tmp_path / "old.safetensors")
        assert _script().main([str(src), str(tmp_path / "new.safetensors"),
                               "--content", "4", "10", "12"]) == 0
        assert "largest output change" in capsys.readouterr().out
        assert load_model(tmp_path / "new.safetensors").config.content_channels == (4, 10, 12)
        assert read_metadata(tmp_path / "new.safetensors")["widened_from"] == str(src)
        with pytest.raises(SystemExit):
            _script().main([str(src), str(tmp_path / "x.safetensors"),
                            "--content", "6", "10", "12"])
