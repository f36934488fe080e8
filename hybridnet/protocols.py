r"""The synthetic evaluation protocols: how a clean validation photo is darkened.

Every protocol is deterministic: the noise (and the camera's noise level) is seeded by
the image's file name and the protocol's name (:func:`hybridnet.degrade.image_seed`),
so every run, machine and method sees the same inputs. All inputs are stored on 8 bits
(and the JPEG variants as JPEG), as a photo would be.

* ``table2`` -- the paper's Table II / III protocol (Sec. IV-B): gamma 3, Gaussian
  noise :math:`\sigma = 0.01`, 8 bits (:func:`hybridnet.degrade.table2_input`).
* ``gamma-G`` for G in 2, 2.5, 3, 3.5, 4 -- the same darkening at other gammas.
* ``camera-NEV`` for N in 1..5 -- a camera-like underexposure by N stops in linear
  light, Poisson-Gaussian sensor noise, sRGB, 8 bits (:func:`hybridnet.degrade.
  apply_realistic` with neutral white balance, no flare): per image the full-well
  electrons at white :math:`N_e` are drawn log-uniformly in [300, 6000] (a phone
  sensor from high to base ISO) and the read noise uniformly in [0.5, 2.5] e-;
  ``camera-NEV-jpeg`` stores the same input as JPEG quality 85.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from hybridnet.degrade import (
    TABLE2_NOISE_SIGMA,
    RealisticDraw,
    apply_realistic,
    gamma_darken,
    image_seed,
    table2_input,
)

F32 = NDArray[np.float32]

#: Camera protocols: range of electrons at white (log-uniform) and read noise (uniform).
CAMERA_ELECTRONS: Final = (300.0, 6000.0)
CAMERA_READ_NOISE: Final = (0.5, 2.5)
CAMERA_JPEG_QUALITY: Final = 85


@dataclass(frozen=True)
class Protocol:
    """One darkening of the validation photos.

    Attributes:
        name: as in the report (``table2``, ``gamma-2.5``, ``camera-3EV-jpeg``...).
        kind: ``table2``, ``gamma`` or ``camera``.
        level: the gamma, or the stops of underexposure.
        jpeg: the input is stored as JPEG (camera protocols).
    """

    name: str
    kind: Literal["table2", "gamma", "camera"]
    level: float
    jpeg: bool = False

    def darken(self, clean: NDArray[np.floating], image_name: str) -> F32:
        """The dark 8-bit input for ``clean`` (sRGB ``H x W x 3`` in [0, 1])."""
        if self.kind == "table2":
            return table2_input(clean, image_seed(image_name))
        rng = np.random.default_rng([image_seed(image_name), image_seed(self.name)])
        if self.kind == "gamma":
            return gamma_darken(clean, self.level, TABLE2_NOISE_SIGMA, rng)
        lo, hi = CAMERA_ELECTRONS
        electrons = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        read = float(rng.uniform(*CAMERA_READ_NOISE))
        draw = RealisticDraw(
            exposure=2.0**-self.level,
            wb_gains=(1.0, 1.0, 1.0),
            electrons_at_white=electrons,
            read_noise_e=read,
            jpeg_quality=CAMERA_JPEG_QUALITY if self.jpeg else None,
        )
        return apply_realistic(clean, draw, rng)


def _gamma_name(g: float) -> str:
    return f"gamma-{g:g}"


TABLE2: Final = Protocol("table2", "table2", 3.0)
GAMMA_SWEEP: Final = tuple(Protocol(_gamma_name(g), "gamma", g) for g in (2.0, 2.5, 3.0, 3.5, 4.0))
CAMERA: Final = tuple(Protocol(f"camera-{n}EV", "camera", float(n)) for n in range(1, 6))
CAMERA_JPEG: Final = tuple(
    Protocol(f"camera-{n}EV-jpeg", "camera", float(n), jpeg=True) for n in range(1, 6)
)
#: Every protocol, in report order.
ALL: Final = (TABLE2, *GAMMA_SWEEP, *CAMERA, *CAMERA_JPEG)
BY_NAME: Final = {p.name: p for p in ALL}


def resolve(names: list[str] | tuple[str, ...] | None) -> tuple[Protocol, ...]:
    """Protocols by name (``None``: all); ``gamma``, ``camera`` and ``camera-jpeg`` name
    their whole groups."""
    if names is None:
        return ALL
    groups = {"gamma": GAMMA_SWEEP, "camera": CAMERA, "camera-jpeg": CAMERA_JPEG}
    out: list[Protocol] = []
    for name in names:
        if name in groups:
            out += groups[name]
        elif name in BY_NAME:
            out.append(BY_NAME[name])
        else:
            known = ", ".join([*groups, *BY_NAME])
            raise ValueError(f"unknown protocol {name!r}; choose from {known}")
    return tuple(dict.fromkeys(out))
