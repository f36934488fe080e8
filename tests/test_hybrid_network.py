"""The hybrid network of Fig. 2: shapes, determinism, backends, structure, bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from hybridnet import HybridNet, HybridNetConfig
from hybridnet.config import PERCEPTUAL_LAYERS
from hybridnet.errors import InvalidInputError
from hybridnet.hybrid_network import reflect_pad_to_multiple

TINY = HybridNetConfig.tiny()


@pytest.fixture(scope="module")
def model() -> HybridNet:
    torch.manual_seed(0)
    return HybridNet(TINY).eval()


class TestShapes:
    @pytest.mark.parametrize("size", [(8, 8), (13, 21), (2, 2), (2, 17), (33, 5), (64, 48)])
    def test_any_size_in_same_size_out(self, model: HybridNet, size: tuple[int, int]) -> None:
        x = torch.rand(2, 3, *size)
        with torch.no_grad():
            y = model(x)
        assert y.shape == x.shape
        assert y.dtype == torch.float32
        assert torch.isfinite(y).all()

    def test_batch_items_are_independent(self, model: HybridNet) -> None:
        x = torch.rand(3, 3, 16, 24)
        with torch.no_grad():
            batch = model(x)
            single = model(x[1:2])
        assert torch.allclose(batch[1:2], single, atol=1e-5)

    def test_float64(self) -> None:
        net = HybridNet(TINY).double().eval()
        with torch.no_grad():
            y = net(torch.rand(1, 3, 9, 10, dtype=torch.float64))
        assert y.dtype == torch.float64


class TestDeterminismAndBackends:
    def test_eval_is_deterministic(self, model: HybridNet) -> None:
        x = torch.rand(1, 3, 24, 40)
        with torch.no_grad():
            assert torch.equal(model(x), model(x))

    def test_same_output_whichever_scan_path(self, model: HybridNet) -> None:
        x = torch.rand(2, 3, 19, 23)
        outputs = []
        with torch.no_grad():
            for backend in ("loop", "reference"):
                model.scan_backend = backend  # type: ignore[assignment]
                outputs.append(model(x))
        model.scan_backend = "auto"
        assert (outputs[0] - outputs[1]).abs().max().item() < 1e-5

    def test_channels_last_does_not_change_result(self, model: HybridNet) -> None:
        x = torch.rand(1, 3, 16, 16)
        with torch.no_grad():
            a = model(x)
            model.channels_last = False
            b = model(x)
            model.channels_last = True
        assert (a - b).abs().max().item() < 1e-5


class TestTraining:
    def test_every_parameter_gets_a_gradient(self) -> None:
        torch.manual_seed(1)
        net = HybridNet(TINY).train()
        y = net(torch.rand(2, 3, 16, 16))
        y.square().mean().backward()
        missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
        # the exposure estimator is trained on its own (hybridnet.train_exposure); its zero
        # output layer starts at the identity curve, so only that layer gets a gradient here
        assert missing == [n for n, _ in net.named_parameters()
                           if n.startswith("exposure.") and not n.startswith("exposure.net.4")]

    def test_a_few_steps_fit_a_fixed_target(self) -> None:
        torch.manual_seed(2)
        net = HybridNet(TINY).train()
        x = torch.rand(2, 3, 16, 16) * 0.2
        target = x.sqrt()
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        losses = []
        for _ in range(30):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(net(x), target)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < 0.5 * losses[0]


class TestStructure:
    """The topology the paper fixes (Sec. III-A/B/D)."""

    def test_content_encoder_scales_and_dilation(self) -> None:
        net = HybridNet(HybridNetConfig())
        feats = {}
        hooks = [
            getattr(net.content, name).register_forward_hook(
                lambda _m, _i, out, name=name: feats.__setitem__(name, out.shape)
            )
            for name in ("enc1", "enc2", "enc3")
        ]
        with torch.no_grad():
            net.eval()(torch.rand(1, 3, 64, 96))
        for h in hooks:
            h.remove()
        assert feats["enc1"][-2:] == (32, 48)  # 1/2
        assert feats["enc2"][-2:] == (16, 24)  # 1/4
        assert feats["enc3"][-2:] == (8, 12)  # 1/8
        convs = net.content.enc1.convs
        assert len(convs) == 3  # three convolutions per block
        assert [c.dilation for c in convs] == [(2, 2), (2, 2), (1, 1)]
        assert all(c.dilation == (1, 1) for c in net.content.enc2.convs)

    def test_bridge_widths(self) -> None:
        cfg = HybridNetConfig()
        net = HybridNet(cfg)
        c1, c2, c3 = cfg.content_channels
        e1, e2, _ = cfg.edge_channels
        assert net.content.dec2.convs[0].in_channels == c3 + c2 + e2
        assert net.content.dec1.convs[0].in_channels == c2 + c1 + e1

    def test_rnn_input_is_image_plus_three_scales(self) -> None:
        cfg = HybridNetConfig(multiscale_channels=2)
        net = HybridNet(cfg)
        x = net.edge.multiscale_features(torch.rand(1, 3, 16, 16))
        assert x.shape[1] == 3 + 3 * 2
        assert [d.stride for d in net.edge.down] == [(2, 2), (4, 4), (8, 8)]

    def test_weight_maps_are_bounded(self) -> None:
        net = HybridNet(TINY)
        g, p, _ = net.edge.weight_maps(torch.rand(1, 3, 16, 16))
        assert g.shape == p.shape == (1, 4, 1, 16, 16)
        assert (p > 0).all() and (p < 1).all()
        assert (g.abs() < 1).all()

    def test_per_channel_weights(self) -> None:
        cfg = HybridNetConfig(
            content_channels=(4, 4, 4), edge_channels=(4, 4, 4), rnn_weights="per_channel"
        )
        net = HybridNet(cfg).eval()
        g, _, _ = net.edge.weight_maps(torch.rand(1, 3, 8, 8))
        assert g.shape == (1, 4, cfg.rnn_channels, 8, 8)
        with torch.no_grad():
            assert net(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)

    def test_no_cuda_calls_in_the_package(self) -> None:
        root = Path(__file__).resolve().parents[1]
        offenders = [
            str(p)
            for pkg in ("hybridnet", "worker", "plugin", "installer", "lowlight")
            for p in (root / pkg).rglob("*.py")
            if re.search(r"\.cuda\(\)", p.read_text(encoding="utf-8"))
        ]
        assert offenders == []


class TestPadding:
    def test_reflect_any_width(self) -> None:
        x = torch.arange(2.0).view(1, 1, 1, 2).expand(1, 1, 2, 2)
        y = reflect_pad_to_multiple(x, 8)
        assert y.shape == (1, 1, 8, 8)
        assert y[0, 0, 0].tolist() == [0, 1, 0, 1, 0, 1, 0, 1]

    def test_mirror_without_repeating_the_edge(self) -> None:
        x = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 1, 2, 5)
        y = reflect_pad_to_multiple(x, 8)
        assert y[0, 0, 0].tolist() == [0, 1, 2, 3, 4, 3, 2, 1]

    def test_multiple_is_untouched(self) -> None:
        x = torch.rand(1, 3, 8, 16)
        assert reflect_pad_to_multiple(x, 8) is x


class TestBadInput:
    @pytest.mark.parametrize(
        ("tensor", "message"),
        [
            (torch.rand(3, 8, 8), "add a batch dimension"),
            (torch.rand(1, 1, 8, 8), "expected 3 colour channels"),
            (torch.rand(1, 4, 8, 8), "expected 3 colour channels"),
            (torch.randint(0, 255, (1, 3, 8, 8)), "floating point"),
            (torch.rand(0, 3, 8, 8), "empty"),
            (torch.rand(1, 3, 0, 8), "empty"),
            (torch.rand(1, 3, 1, 1), "at least 2×2"),
            (torch.rand(1, 3, 1, 40), "at least 2×2"),
            (torch.rand(1, 3, 8, 8) * 255, "divide by 255"),
            (torch.rand(1, 3, 8, 8) - 0.5, r"\[0, 1\]"),
        ],
    )
    def test_clear_errors(self, model: HybridNet, tensor: torch.Tensor, message: str) -> None:
        with pytest.raises(InvalidInputError, match=message):
            model(tensor)

    @pytest.mark.parametrize("bad", [float("nan"), float("inf")])
    def test_non_finite(self, model: HybridNet, bad: float) -> None:
        x = torch.rand(1, 3, 8, 8)
        x[0, 1, 2, 3] = bad
        with pytest.raises(InvalidInputError, match="NaN or infinite"):
            model(x)

    def test_numpy_array(self, model: HybridNet) -> None:
        import numpy as np

        with pytest.raises(InvalidInputError, match="Enhancer"):
            model(np.zeros((1, 3, 8, 8), dtype=np.float32))  # type: ignore[arg-type]


class TestConfig:
    def test_json_round_trip(self) -> None:
        cfg = HybridNetConfig(content_channels=(8, 16, 24), rnn_weights="per_channel")
        assert HybridNetConfig.from_json(cfg.to_json()) == cfg

    def test_frozen(self) -> None:
        cfg = HybridNetConfig()
        with pytest.raises(AttributeError):
            cfg.fusion_channels = 3  # type: ignore[misc]

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"content_channels": (8, 16)},
            {"edge_channels": (8, 0, 8)},
            {"convs_per_block": 1},
            {"rnn_weights": "sometimes"},
            {"upsample": "bicubic"},
            {"perceptual_layer": "relu9_9"},
        ],
    )
    def test_rejects_nonsense(self, kwargs: dict[str, object]) -> None:
        with pytest.raises(ValueError):
            HybridNetConfig(**kwargs)  # type: ignore[arg-type]

    def test_unknown_keys_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown config keys"):
            HybridNetConfig.from_json('{"content_channels": [4, 8, 8], "wings": 2}')

    def test_perceptual_layers_are_relus_of_vgg16(self) -> None:
        from hybridnet.vgg import VGGFeatures

        for name, index in PERCEPTUAL_LAYERS.items():
            layer = VGGFeatures(name).features[index]
            assert isinstance(layer, torch.nn.ReLU), name
