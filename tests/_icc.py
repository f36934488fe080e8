"""Hand-made ICC v2 profiles and a float64 reference colour conversion for tests.

Pillow's ImageCms can only create sRGB/LAB/XYZ profiles, so tests that need a wide-gamut
or gray profile build a minimal, valid matrix/TRC profile here: a 128-byte header, a tag
table and the ``desc``/``cprt``/``wtpt``/``rXYZ``/``gXYZ``/``bXYZ``/``rTRC``/``gTRC``/
``bTRC`` (or ``kTRC`` for gray) tags. Colorants are the primaries adapted from their
white point to the D50 PCS with the Bradford transform, exactly as ICC requires.

:func:`reference_to_srgb` converts with those matrices in float64 (no LittleCMS), so a
test can check a colour-managed reader against an expectation computed independently.
"""

from __future__ import annotations

import struct

import numpy as np
from numpy.typing import NDArray

D50_XYZ = (0.9642, 1.0, 0.8249)
D65_XY = (0.3127, 0.3290)
SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
ADOBE_RGB_PRIMARIES = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
ADOBE_RGB_GAMMA = 563 / 256  # 2.19921875, as stored (u8Fixed8) in Adobe's profile

_BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
)


def _xy_to_xyz(x: float, y: float) -> NDArray[np.float64]:
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def rgb_to_xyz_d50(
    primaries: tuple[tuple[float, float], ...], white_xy: tuple[float, float] = D65_XY
) -> NDArray[np.float64]:
    """3×3 matrix from linear RGB to D50-adapted XYZ (columns are the ICC colorants)."""
    p = np.stack([_xy_to_xyz(*xy) for xy in primaries], axis=1)
    white = _xy_to_xyz(*white_xy)
    m = p * np.linalg.solve(p, white)[None, :]
    src_cone = _BRADFORD @ white
    dst_cone = _BRADFORD @ np.array(D50_XYZ)
    adapt = np.linalg.inv(_BRADFORD) @ np.diag(dst_cone / src_cone) @ _BRADFORD
    return np.asarray(adapt @ m, dtype=np.float64)


def _s15f16(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz_tag(xyz: tuple[float, float, float] | NDArray[np.float64]) -> bytes:
    return b"XYZ \x00\x00\x00\x00" + b"".join(_s15f16(float(c)) for c in xyz)


def _gamma_tag(gamma: float) -> bytes:
    return b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, round(gamma * 256)) + b"\x00\x00"


def _desc_tag(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\x00"
    return (
        b"desc\x00\x00\x00\x00"
        + struct.pack(">I", len(ascii_))
        + ascii_
        + struct.pack(">II", 0, 0)  # unicode language code, count
        + struct.pack(">HB", 0, 0)  # scriptcode code, count
        + b"\x00" * 67
    )


def _text_tag(text: str) -> bytes:
    return b"text\x00\x00\x00\x00" + text.encode("ascii") + b"\x00"


def _assemble(colour_space: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    entries = b""
    data = b""
    for sig, payload in tags:
        while (offset + len(data)) % 4:
            data += b"\x00"
        entries += sig + struct.pack(">II", offset + len(data), len(payload))
        data += payload
    while len(data) % 4:
        data += b"\x00"
    size = 128 + table_size + len(data)
    header = (
        struct.pack(">I", size)
        + b"test"  # preferred CMM
        + struct.pack(">I", 0x02100000)  # version 2.1
        + b"mntr"
        + colour_space
        + b"XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\x00" * 4  # platform
        + b"\x00" * 4  # flags
        + b"\x00" * 8  # manufacturer, model
        + b"\x00" * 8  # attributes
        + struct.pack(">I", 0)  # perceptual intent
        + b"".join(_s15f16(c) for c in D50_XYZ)
        + b"test"  # creator
        + b"\x00" * 16  # profile ID (none for v2)
        + b"\x00" * 28
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + entries + data


def matrix_trc_profile(
    description: str,
    primaries: tuple[tuple[float, float], ...],
    gamma: float,
    white_xy: tuple[float, float] = D65_XY,
) -> bytes:
    """A v2 RGB display profile with the given primaries and a pure-gamma TRC."""
    m = rgb_to_xyz_d50(primaries, white_xy)
    white = _xy_to_xyz(*white_xy)
    trc = _gamma_tag(gamma)
    return _assemble(
        b"RGB ",
        [
            (b"desc", _desc_tag(description)),
            (b"cprt", _text_tag("No copyright, test profile")),
            (b"wtpt", _xyz_tag(white)),
            (b"rXYZ", _xyz_tag(m[:, 0])),
            (b"gXYZ", _xyz_tag(m[:, 1])),
            (b"bXYZ", _xyz_tag(m[:, 2])),
            (b"rTRC", trc),
            (b"gTRC", trc),
            (b"bTRC", trc),
        ],
    )


def adobe_rgb_profile() -> bytes:
    """Adobe RGB (1998) compatible profile: Adobe primaries, D65, gamma 563/256."""
    return matrix_trc_profile("Adobe RGB (1998) test", ADOBE_RGB_PRIMARIES, ADOBE_RGB_GAMMA)


def gray_profile(gamma: float, description: str = "Gray test") -> bytes:
    """A v2 gray display profile with a pure-gamma ``kTRC``."""
    return _assemble(
        b"GRAY",
        [
            (b"desc", _desc_tag(description)),
            (b"cprt", _text_tag("No copyright, test profile")),
            (b"wtpt", _xyz_tag(D50_XYZ)),
            (b"kTRC", _gamma_tag(gamma)),
        ],
    )


def srgb_encode(linear: NDArray[np.float64]) -> NDArray[np.float64]:
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def reference_to_srgb(
    rgb: NDArray[np.float64], primaries: tuple[tuple[float, float], ...], gamma: float
) -> NDArray[np.float64]:
    """Convert 0..1 RGB in a gamma/primaries space to sRGB 0..1 in float64 (clipped)."""
    linear = np.power(np.clip(rgb, 0.0, 1.0), gamma)
    m = np.linalg.inv(rgb_to_xyz_d50(SRGB_PRIMARIES)) @ rgb_to_xyz_d50(primaries)
    return srgb_encode(linear @ m.T)
