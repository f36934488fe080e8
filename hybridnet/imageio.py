"""Read and write image files: the one place every client (CLI, desktop panel, worker,
GIMP plug-in) turns files into pixel arrays and back.

This module is torch-, ZeroMQ- and Qt-free; importing it costs one Pillow import
(tifffile and imagecodecs are imported on first use).

Pixel contract
--------------
Arrays are numpy, C-contiguous, shaped ``H×W`` (gray), ``H×W×2`` (gray + alpha),
``H×W×3`` (RGB) or ``H×W×4`` (RGBA), of dtype ``uint8``, ``uint16`` or ``float32``
(nominal range 0..1). Alpha is *straight* (not premultiplied) and is never modified:
colour conversions touch colour channels only and copy alpha bit for bit.

:func:`read_image` returns pixels in the **sRGB encoding** with the file's own dtype
(8-bit files → ``uint8``, 16-bit → ``uint16``, 32-bit float TIFF → ``float32``), so the
model sees one colour space. :func:`write_image` given the :class:`ImageMetadata` of a
read puts the file's colour space, EXIF, XMP, ICC profile, DPI and JPEG quality back.

Libraries (and why)
-------------------
* **Pillow** decodes/encodes JPEG, WebP, BMP and ≤ 8-bit PNG (palette, 1/2/4-bit gray,
  transparency keys, interlacing), and does the rare Lab/YCbCr conversions.
* **tifffile** reads and writes every TIFF (Pillow cannot hold 16-bit RGB or float RGB
  and silently drops them to 8 bits): 8/16-bit, float, planar, tiled, BigTIFF, ICC (tag
  34675), resolution tags, XMP (tag 700). It is pure Python and maintained together with
* **imagecodecs** (same author, C. Gohlke), which tifffile needs for LZW — the default
  compression of 16-bit TIFFs from Photoshop/Lightroom/GIMP — and which provides libpng
  (16-bit PNG, which Pillow also truncates to 8 bits) and LittleCMS 2 at 8, 16 and 32-bit
  float precision (Pillow's ImageCms is limited to 8-bit modes). One binary wheel gives
  all three; the alternatives (pypng: pure-Python unfiltering, ~seconds per megapixel;
  a hand-written PNG codec: Avg/Paeth unfiltering is inherently sequential and cannot be
  vectorised in numpy) were slower or more code to trust.
  PNG is always *written* by imagecodecs (8 and 16-bit) with the metadata chunks (iCCP,
  pHYs, eXIf, tEXt/iTXt, XMP) inserted by this module, so one code path keeps metadata
  for both depths; 16-bit PNGs are *read* by imagecodecs, their chunks parsed here.

Colour management
-----------------
A file with an embedded ICC profile that is *not* sRGB (Adobe RGB, Display P3, ProPhoto,
a gray gamma profile, CMYK...) is converted to sRGB on read with LittleCMS (imagecodecs)
using the relative colorimetric intent. Integer data are transformed at the file's bit
depth with ``cmsFLAGS_NOOPTIMIZE``: LittleCMS's optimised 16-bit matrix/shaper pipeline
is off by up to ~400/65535 in deep shadows, the unoptimised one is correctly rounded
(≤ 0.5 level); float data use the float pipeline. This works for matrix/TRC and LUT
(A2B/B2A) profiles alike, so no tag parsing or sampled 3-D LUTs are needed. Conversion
runs on row strips (bounded temporaries) in threads (LittleCMS releases the GIL).
**Out-of-gamut and out-of-range values are clipped to 0..1** (a saturated Adobe RGB green
becomes the most saturated sRGB green); float data are also clipped when converted.
A profile counts as "already sRGB" when it maps a 9×9×9 grid (or a gray ramp) to sRGB
within half an 8-bit level; such files are not converted and their profile is written
back verbatim. ``metadata.icc_handling`` records what happened (see
:class:`ImageMetadata`); on write a ``"converted"`` image is converted back to the
original profile and the *original* ICC bytes are embedded, so an unchanged Adobe RGB
image survives a round trip within ~1 level (8-bit) or a few 1/65535 (16-bit), minus
clipping of colours outside sRGB. CMYK files become RGB (through the embedded CMYK
profile when there is one, else ``RGB = (1 - C)(1 - K)``); they are written as untagged
sRGB. PNG ``gAMA``/``cHRM`` chunks without ``iCCP`` are ignored (treated as sRGB).

Formats and bit depths on write
-------------------------------
======  ======================  ==========================================================
format  holds                   what happens to other input
======  ======================  ==========================================================
PNG     8/16-bit, any layout    float32 → 16-bit
TIFF    8/16-bit, float32, any  written as given (float data are not clipped)
JPEG    8-bit gray/RGB          16-bit/float → 8-bit; alpha: see below
WebP    8-bit RGB/RGBA          16-bit/float → 8-bit; gray → RGB
BMP     8-bit gray/RGB          16-bit/float → 8-bit; alpha: see below
======  ======================  ==========================================================

Bit-depth reduction rounds to nearest: ``uint16 → uint8`` is ``round(v / 257)`` and
float is ``round(clip(x, 0, 1) · max)`` (NaN → 0). **Alpha to JPEG/BMP**: a fully opaque
alpha channel is dropped (lossless); any transparency is refused with an
:class:`ImageFileError` asking for PNG, TIFF or WebP — silently flattening onto a colour
would change pixels the user cannot get back. JPEG quality: ``quality=`` if given, else
the quality estimated from the source JPEG's quantisation tables, else 95; chroma
subsampling follows the source JPEG, else 4:4:4 for quality ≥ 90 and 4:2:0 below.
WebP: ``quality=`` (100 means *lossless*), else lossless when the source was a lossless
WebP, else lossy quality 95. TIFF keeps the source's compression (none, LZW, Deflate,
PackBits; other schemes become Deflate) and is uncompressed for new files.

Metadata
--------
EXIF is kept byte for byte (JPEG, PNG, WebP; TIFF gets IFD0 descriptive tags plus the
Exif and GPS sub-IFDs). **EXIF orientation is not applied**: pixels are returned as
stored and the orientation tag is written back unchanged, so viewers show the output the
same way as the input. ICC, DPI (JPEG, PNG, TIFF, BMP), XMP and PNG text chunks are kept.

Safety
------
Writes are atomic: the file is encoded into ``.NAME.tmp-XXXX`` in the target folder,
fsynced and then moved into place (``os.replace``, or ``os.link`` + unlink when
``overwrite=False`` so a file created meanwhile is never clobbered); on any error the
temporary file is removed and an existing target is untouched. Pillow's
decompression-bomb guard (warning at 89 MP, error at 179 MP) would reject real 100 MP
panoramas, so reads lift it *only while this module decodes* (reference-counted under a
lock, restored afterwards) and apply :data:`MAX_PIXELS` (1 gigapixel) themselves. Large
images are never copied more than about twice (50 MP 16-bit TIFF: ~600 MB peak).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import secrets
import stat
import struct
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Final, Literal, TypeAlias

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from hybridnet.contract import check_image, colour_to_float

__all__ = [
    "MAX_PIXELS",
    "SUPPORTED_SUFFIXES",
    "ImageFileError",
    "ImageMetadata",
    "LoadedImage",
    "output_format_for",
    "read_image",
    "read_rgb",
    "remove_linked_temporaries",
    "write_image",
]

Array: TypeAlias = NDArray[Any]
Layout: TypeAlias = Literal["gray", "graya", "rgb", "rgba", "cmyk", "cmyka"]
IccHandling: TypeAlias = Literal["none", "srgb", "converted", "ignored"]

SUPPORTED_SUFFIXES: Final[frozenset[str]] = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"}
)
"""File suffixes (lower case) that :func:`write_image` can produce and
:func:`read_image` expects."""

MAX_PIXELS: Final[int] = 1_000_000_000
"""Largest image (width × height) that :func:`read_image` decodes."""

_SUFFIX_FORMAT: Final[dict[str, str]] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
_FORMAT_ALIASES: Final[dict[str, str]] = {
    "JPEG": "JPEG",
    "JPG": "JPEG",
    "PNG": "PNG",
    "TIFF": "TIFF",
    "TIF": "TIFF",
    "WEBP": "WEBP",
    "BMP": "BMP",
}
_RAW_SUFFIXES: Final[frozenset[str]] = frozenset(
    ".cr2 .cr3 .nef .nrw .arw .srf .sr2 .dng .raf .orf .rw2 .pef .srw .x3f .3fr .iiq .rwl "
    ".erf .kdc .mrw".split()
)
_SUPPORTED_LIST: Final[str] = ".jpg, .png, .tif, .webp or .bmp"
_DEFAULT_JPEG_QUALITY: Final[int] = 95
_DEFAULT_WEBP_QUALITY: Final[int] = 95
_PNG_LEVEL_8BIT: Final[int] = 6  # libpng/Pillow default
# 16-bit photo data carry noise in the low byte that deflate cannot squeeze: level 2 is
# within 1 % of level 6 in size and ~3x faster (12 MP: ~2.5 s instead of ~9 s).
_PNG_LEVEL_16BIT: Final[int] = 2
_STRIP_PIXELS: Final[int] = 1 << 19  # pixels per strip for conversions
_XMP_PNG_KEY: Final[str] = "XML:com.adobe.xmp"
_EXIF_HEADER: Final[bytes] = b"Exif\x00\x00"
_TIFF_IFD0_EXIF_TAGS: Final[dict[int, str]] = {
    # tag -> tifffile dtype; the IFD0 tags that EXIF shares with TIFF
    270: "s",  # ImageDescription
    271: "s",  # Make
    272: "s",  # Model
    274: "H",  # Orientation
    305: "s",  # Software
    306: "s",  # DateTime
    315: "s",  # Artist
    316: "s",  # HostComputer
    33432: "s",  # Copyright
}
_EXIF_IFD: Final[int] = 0x8769
_GPS_IFD: Final[int] = 0x8825
_INTEROP_IFD: Final[int] = 0xA005
_TIFF_KEEP_COMPRESSION: Final[dict[str, str | None]] = {
    "NONE": None,
    "LZW": "lzw",
    "ADOBE_DEFLATE": "zlib",
    "DEFLATE": "zlib",
    "PACKBITS": "packbits",
}

# IJG (libjpeg) base quantisation tables in natural (row-major) order, Annex K of T.81.
_JPEG_LUMA: Final[tuple[int, ...]] = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
_JPEG_CHROMA: Final[tuple[int, ...]] = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    *([99] * 32),
)  # fmt: skip


# --------------------------------------------------------------------------- types


class ImageFileError(ValueError):
    """An image file cannot be read or written.

    The message is one user-facing line: the file, what is wrong, and what to do, e.g.
    ``"photo.png: the file is truncated (image file is truncated); re-export or
    re-download it"``. Subclasses :class:`ValueError` so callers that validate input
    generically still catch it.
    """


@dataclass(frozen=True)
class ImageMetadata:
    """Everything about a file except its pixels, kept to write the result back.

    Construct it yourself (``ImageMetadata(format="PNG")``) for images that did not come
    from a file; every field but ``format`` has a neutral default.

    Attributes:
        format: container read: ``"JPEG"``, ``"PNG"``, ``"TIFF"``, ``"WEBP"`` or
            ``"BMP"`` (from the content, not the suffix).
        icc_profile: the *original* embedded ICC profile bytes, or ``None``.
        exif: EXIF as TIFF-structured bytes (starting ``II*\\0`` or ``MM\\0*``, without
            the ``Exif\\0\\0`` JPEG prefix), or ``None``.
        dpi: horizontal and vertical resolution in dots per inch, or ``None``.
        jpeg_quality: IJG quality 1..100 estimated from the quantisation tables (JPEG).
        jpeg_subsampling: ``"4:4:4"``, ``"4:2:2"`` or ``"4:2:0"`` (JPEG), else ``None``.
        source_mode: the file's pixel layout for messages, Pillow-style: ``"L"``,
            ``"LA"``, ``"RGB"``, ``"RGBA"``, ``"I;16"`` (16-bit gray), ``"RGB;16"``,
            ``"F"`` (float gray), ``"RGB;F"``; conversions as ``"P->RGBA"``,
            ``"CMYK->RGB"``, ``"1->L"``.
        converted_from: what the read converted, e.g. ``"palette"``, ``"CMYK"``,
            ``"1-bit"``, ``"LAB"``, ``"transparency key"``, ``"premultiplied alpha"``,
            ``"32-bit integer"``; ``None`` when the samples are the file's own.
        colorspace: ``"sRGB"``, or the description of the profile the pixels were
            converted from (``"Adobe RGB (1998)"``), or ``"sRGB (... ignored)"`` when an
            unusable profile was ignored.
        icc_handling: ``"none"`` (no profile), ``"srgb"`` (profile equivalent to sRGB:
            pixels untouched, profile written back as is), ``"converted"`` (pixels
            converted to sRGB; :func:`write_image` converts back and embeds the profile)
            or ``"ignored"`` (profile unusable or not matching the pixels; pixels
            untouched, profile not written back).
        bit_depth: bits per sample in the file (1, 2, 4, 8, 12, 16, 32, 64).
        xmp: the XMP packet bytes, or ``None``.
        png_text: PNG ``tEXt``/``zTXt``/``iTXt`` entries as ``(key, text)`` pairs.
        tiff_compression: TIFF compression name (``"NONE"``, ``"LZW"``,
            ``"ADOBE_DEFLATE"``...), else ``None``.
        webp_lossless: whether a WebP used lossless (VP8L) coding, else ``None``.
        pages: images in the file (a multi-page TIFF has several); only the first is
            read and written back, so callers tell the user when this is above 1.
    """

    format: str
    icc_profile: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None
    jpeg_quality: int | None = None
    jpeg_subsampling: str | None = None
    source_mode: str = ""
    converted_from: str | None = None
    colorspace: str = "sRGB"
    icc_handling: IccHandling = "none"
    bit_depth: int = 8
    xmp: bytes | None = None
    png_text: tuple[tuple[str, str], ...] = ()
    tiff_compression: str | None = None
    webp_lossless: bool | None = None
    pages: int = 1

    @property
    def page_note(self) -> str | None:
        """What to tell the user when pages of the file are left out, else ``None``."""
        if self.pages <= 1:
            return None
        return (f"only the first of its {self.pages} pages is enhanced; the output holds "
                "that page alone (the input keeps all of them)")


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """An image read by :func:`read_image`.

    Attributes:
        pixels: ``H×W[×C]`` array in the sRGB encoding, dtype as the file
            (``uint8``/``uint16``/``float32``); C-contiguous and writable.
        metadata: what :func:`write_image` needs to write a result back faithfully.
        path: the file that was read.
    """

    pixels: Array
    metadata: ImageMetadata
    path: Path

    @property
    def notes(self) -> tuple[str, ...]:
        """What reading changed that the user should be told: conversions, pages left out."""
        notes: list[str] = []
        if self.metadata.converted_from:
            channels = 1 if self.pixels.ndim == 2 else self.pixels.shape[2]
            layout = {1: "gray", 2: "gray+alpha", 3: "RGB", 4: "RGBA"}[channels]
            notes.append(f"{self.metadata.converted_from} image converted to {layout} for "
                         "enhancement")
        if self.metadata.page_note:
            notes.append(self.metadata.page_note)
        return tuple(notes)


@dataclass
class _Decoded:
    """Intermediate result of a format reader (before colour management)."""

    pixels: Array
    layout: Layout
    source_mode: str
    converted_from: str | None = None
    icc: bytes | None = None
    colorspace_override: str | None = None


# --------------------------------------------------------------------------- public API


def output_format_for(path: str | os.PathLike[str]) -> str:
    """Return the format :func:`write_image` produces for ``path``, from its suffix.

    Args:
        path: the file to write; only the suffix (case-insensitive) matters.

    Returns:
        ``"JPEG"``, ``"PNG"``, ``"TIFF"``, ``"WEBP"`` or ``"BMP"``.

    Raises:
        ImageFileError: the suffix is missing or not in :data:`SUPPORTED_SUFFIXES`.

    Example:
        >>> output_format_for("out/Photo.JPG")
        'JPEG'
    """
    p = Path(os.fspath(path))
    suffix = p.suffix.lower()
    fmt = _SUFFIX_FORMAT.get(suffix)
    if fmt is None:
        what = f"unsupported file type '{p.suffix}'" if suffix else "no file extension"
        raise ImageFileError(f"{p}: {what}; use {_SUPPORTED_LIST}")
    return fmt


def read_image(path: str | os.PathLike[str]) -> LoadedImage:
    """Read an image file into an sRGB-encoded array plus the metadata to write it back.

    The format is detected from the content (a PNG named ``.jpg`` is read as PNG).
    Palette, 1-bit, CMYK, Lab, YCbCr, premultiplied-alpha and colour-key images are
    converted to gray/RGB(A) and the conversion is recorded in
    ``metadata.converted_from``; embedded non-sRGB ICC profiles are converted to sRGB
    (see the module docstring). EXIF orientation is *not* applied. Multi-page TIFFs give
    their first page; animated PNG/WebP are refused; JPEG/MPO give the primary image.

    Args:
        path: the file to read.

    Returns:
        The pixels (``uint8``/``uint16``/``float32`` as in the file, shape
        ``H×W[×2|3|4]``), their :class:`ImageMetadata` and the path.

    Raises:
        ImageFileError: one line naming the file, the problem (missing, a folder, not an
            image, truncated, damaged, empty, too large, unsupported pixel format...)
            and what to do.

    Example:
        >>> img = read_image("photo.jpg")  # doctest: +SKIP
        >>> img.pixels.shape, img.pixels.dtype, img.metadata.jpeg_quality  # doctest: +SKIP
        ((3000, 4000, 3), dtype('uint8'), 92)
    """
    p = Path(os.fspath(path))
    size = _check_readable(p)
    with _open_for_read(p) as fh:
        head = fh.read(64)
    kind = _sniff(p, head)
    try:
        if kind == "PNG":
            decoded, meta = _read_png(p, size)
        elif kind == "TIFF":
            decoded, meta = _read_tiff(p, size)
        else:
            decoded, meta = _read_pillow(p, kind, size)
        pixels, meta = _to_srgb(p, decoded, meta)
    except ImageFileError:
        raise
    except MemoryError:
        raise ImageFileError(
            f"{p}: not enough memory to load this image; close other programs or use a "
            "smaller image"
        ) from None
    except _DECODE_ERRORS as exc:
        raise _decode_error(p, kind, exc) from exc
    return LoadedImage(pixels=pixels, metadata=meta, path=p)


def read_rgb(path: str | os.PathLike[str], max_side: int | None = None) -> NDArray[np.float32]:
    """An image file as float32 RGB in [0, 1], ``H×W×3``: for training and measurement.

    Read by :func:`read_image` (so 16-bit and float files keep their scale, ICC profiles
    are converted to sRGB, CMYK and palettes are converted), then mapped by
    :func:`hybridnet.contract.colour_to_float`: gray is repeated in the three channels
    and alpha is dropped.

    Args:
        path: the file to read.
        max_side: when the longer side is larger, the image is first downscaled to it with
            a box filter (8-bit images on 8 bits, others in float32).

    Raises:
        ImageFileError: the file cannot be read (see :func:`read_image`).
    """
    pixels = read_image(path).pixels
    h, w = pixels.shape[:2]
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        pixels = _resize_box(pixels, (max(1, round(w * scale)), max(1, round(h * scale))))
    return colour_to_float(pixels, check_image(pixels, name=str(path)))


def _resize_box(pixels: Array, size: tuple[int, int]) -> Array:
    """Box-filter resize to ``size`` (width, height), channel by channel, keeping the dtype."""
    planes = pixels[..., None] if pixels.ndim == 2 else pixels
    out = []
    for c in range(planes.shape[2]):
        plane = planes[..., c]
        if plane.dtype == np.uint8:
            out.append(np.asarray(Image.fromarray(plane, "L").resize(size, Image.Resampling.BOX)))
        else:
            scaled = Image.fromarray(plane.astype(np.float32), "F").resize(
                size, Image.Resampling.BOX)
            out.append(np.asarray(scaled).astype(plane.dtype) if plane.dtype == np.float32
                       else np.round(np.asarray(scaled)).astype(plane.dtype))
    stacked = np.stack(out, axis=2)
    return stacked[..., 0] if pixels.ndim == 2 else stacked


def write_image(
    path: str | os.PathLike[str],
    pixels: Array,
    metadata: ImageMetadata | None = None,
    *,
    format: str | None = None,
    overwrite: bool = False,
    quality: int | None = None,
) -> Path:
    """Write an sRGB-encoded array to an image file, atomically.

    Args:
        path: target file; its suffix picks the format unless ``format`` is given.
        pixels: ``H×W``, ``H×W×1``, ``H×W×2``, ``H×W×3`` or ``H×W×4`` array of
            ``uint8``, ``uint16`` or ``float32``/``float64`` (0..1), in sRGB encoding.
        metadata: metadata of the source (usually ``loaded.metadata``): the pixels are
            converted back to its ICC profile and EXIF, XMP, ICC, DPI and JPEG
            quality/subsampling are written. ``None`` writes untagged sRGB.
        format: ``"JPEG"``/``"JPG"``, ``"PNG"``, ``"TIFF"``/``"TIF"``, ``"WEBP"`` or
            ``"BMP"`` (case-insensitive) to override the suffix.
        overwrite: replace an existing file. When ``False`` (default) an existing target
            raises :class:`FileExistsError`, also if it appears while encoding.
        quality: 1..100 for JPEG and WebP (WebP: 100 = lossless); ignored otherwise.

    Returns:
        The path written.

    Raises:
        FileExistsError: the target exists and ``overwrite`` is ``False``.
        ImageFileError: unsupported suffix/format, invalid pixels, transparency for a
            format without alpha, folder missing or not writable, disk full, or the
            encoder failed. Nothing is left behind in those cases.

    Example:
        >>> img = read_image("in.tif")  # doctest: +SKIP
        >>> write_image("out.tif", enhanced, img.metadata)  # doctest: +SKIP
        PosixPath('out.tif')
    """
    p = Path(os.fspath(path))
    fmt = _normalise_format(p, format) if format is not None else output_format_for(p)
    arr = _validate_pixels(p, pixels)
    if quality is not None and (
        isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100
    ):
        raise ImageFileError(f"{p}: quality must be an integer from 1 to 100, got {quality!r}")
    _check_target(p, overwrite)
    arr = _adapt_layout(p, arr, fmt)
    arr, icc = _from_srgb(arr, metadata if fmt != "BMP" else None)  # BMP: no ICC support
    encoder = _ENCODERS[fmt]
    meta = metadata if metadata is not None else ImageMetadata(format=fmt)

    def write(fh: IO[bytes]) -> None:
        encoder(fh, arr, meta, icc, quality)

    try:
        _atomic_write(p, write, overwrite)
    except (ImageFileError, FileExistsError):
        raise
    except MemoryError:
        raise ImageFileError(
            f"{p}: not enough memory to encode the image; close other programs and retry"
        ) from None
    except OSError as exc:
        raise _os_write_error(p, exc) from exc
    except (ValueError, RuntimeError, TypeError, struct.error, zlib.error) as exc:
        raise ImageFileError(
            f"{p}: the {fmt} encoder failed ({_one_line(exc)}); try another format"
        ) from exc
    return p


# --------------------------------------------------------------------------- reading


def _check_readable(p: Path) -> int:
    """Return the file size or raise a one-line error for missing/odd/empty paths."""
    try:
        st = p.stat()
    except FileNotFoundError:
        parent = p.parent
        where = "" if parent == Path("") or parent.is_dir() else f" (folder {parent} is missing)"
        raise ImageFileError(f"{p}: no such file{where}; check the name and folder") from None
    except PermissionError:
        raise ImageFileError(f"{p}: permission denied; check the file's permissions") from None
    except OSError as exc:
        raise ImageFileError(f"{p}: cannot access the file ({_one_line(exc)})") from exc
    if stat.S_ISDIR(st.st_mode):
        raise ImageFileError(f"{p}: is a folder, not an image file; choose a file inside it")
    if not stat.S_ISREG(st.st_mode):
        raise ImageFileError(f"{p}: is not a regular file; choose an image file")
    if st.st_size == 0:
        raise ImageFileError(f"{p}: the file is empty (0 bytes); re-export or re-download it")
    if p.suffix.lower() in _RAW_SUFFIXES:
        raise ImageFileError(
            f"{p}: camera RAW files are not supported; export a TIFF or JPEG from your RAW "
            "editor first"
        )
    return st.st_size


@contextmanager
def _open_for_read(p: Path) -> Iterator[IO[bytes]]:
    try:
        fh = open(p, "rb")
    except PermissionError:
        raise ImageFileError(f"{p}: permission denied; check the file's permissions") from None
    except OSError as exc:
        raise ImageFileError(f"{p}: cannot open the file ({_one_line(exc)})") from exc
    with fh:
        yield fh


def _sniff(p: Path, head: bytes) -> str:
    """Identify the container from magic bytes, or raise a helpful error."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM" and len(head) >= 26:
        return "BMP"
    other = _other_format(head)
    if other is not None:
        raise ImageFileError(
            f"{p}: {other} files are not supported; convert it to {_SUPPORTED_LIST} first"
        )
    if head and all(b in b"\t\n\r" or 32 <= b < 127 for b in head[:64]):
        what = "the file contains text, not image data"
    else:
        what = "not an image file (not JPEG, PNG, TIFF, WebP or BMP data)"
    raise ImageFileError(f"{p}: {what}; check that it is a photo, or re-export it")


def _other_format(head: bytes) -> str | None:
    if head[:4] == b"GIF8":
        return "GIF"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis", b"hevc"):
            return "HEIC/HEIF"
        if brand.startswith(b"crx"):
            return "Canon CR3 RAW"
        return "ISO media (video/HEIF)"
    if head[:4] == b"8BPS":
        return "Photoshop PSD"
    if head[:4] == b"%PDF":
        return "PDF"
    if head[:4] == b"v/1\x01":
        return "OpenEXR"
    if head[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or head[:4] == b"\xff\x4f\xff\x51":
        return "JPEG 2000"
    if head[:2] == b"\xff\x0a" or head[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return "JPEG XL"
    if head[:4] == b"\x00\x00\x01\x00":
        return "ICO"
    if head.lstrip()[:5].lower() in (b"<svg ", b"<?xml"):
        return "SVG/XML"
    if head[:4] == b"FUJI":
        return "Fujifilm RAF RAW"
    return None


def _check_dimensions(p: Path, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageFileError(f"{p}: the image has no pixels ({width}×{height}); re-export it")
    if width * height > MAX_PIXELS:
        raise ImageFileError(
            f"{p}: the image is too large ({width}×{height} = "
            f"{width * height / 1e6:.0f} megapixels; the limit is {MAX_PIXELS / 1e6:.0f}); "
            "reduce its size first"
        )


_PIL_LIMIT_LOCK = threading.Lock()
_pil_limit_users = 0
_pil_saved_limit: int | None = None


@contextmanager
def _pillow_no_bomb_limit() -> Iterator[None]:
    """Disable Pillow's decompression-bomb limit while this module decodes.

    Reference-counted under a lock so concurrent reads restore the user's value once the
    last one finishes; :func:`_check_dimensions` applies :data:`MAX_PIXELS` instead.
    """
    global _pil_limit_users, _pil_saved_limit
    with _PIL_LIMIT_LOCK:
        if _pil_limit_users == 0:
            _pil_saved_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _pil_limit_users += 1
    try:
        yield
    finally:
        with _PIL_LIMIT_LOCK:
            _pil_limit_users -= 1
            if _pil_limit_users == 0:
                Image.MAX_IMAGE_PIXELS = _pil_saved_limit


def _read_pillow(p: Path, kind: str, size: int) -> tuple[_Decoded, ImageMetadata]:
    """JPEG, WebP and BMP through Pillow, and TIFFs that tifffile cannot decode."""
    webp_lossless: bool | None = None
    if kind == "WEBP":
        webp_lossless = _scan_webp(p, size)
    with _pillow_no_bomb_limit(), Image.open(p, formats=[kind]) as im:
        _check_dimensions(p, *im.size)
        if kind == "WEBP" and getattr(im, "n_frames", 1) > 1:
            raise ImageFileError(
                f"{p}: animated WebP is not supported; export a single frame as an image"
            )
        im.load()
        info = dict(im.info)
        quality = subsampling = None
        if kind == "JPEG":
            quality = _estimate_jpeg_quality(getattr(im, "quantization", None) or {})
            subsampling = _jpeg_subsampling(im)
        icc = info.get("icc_profile") or None
        im_mode = im.mode
        pages = int(getattr(im, "n_frames", 1)) if kind == "TIFF" else 1  # not MPO's extras
        decoded = _pillow_to_array(p, im, icc)
    meta = ImageMetadata(
        format=kind,
        icc_profile=icc,
        exif=_exif_payload(info.get("exif")),
        dpi=_clean_dpi(info.get("dpi")),
        jpeg_quality=quality,
        jpeg_subsampling=subsampling,
        source_mode=decoded.source_mode,
        converted_from=decoded.converted_from,
        bit_depth=_PILLOW_BITS.get(im_mode, 8),
        xmp=_as_bytes(info.get("xmp")),
        webp_lossless=webp_lossless,
        pages=pages,
    )
    return decoded, meta


_PILLOW_BITS: Final[dict[str, int]] = {"1": 1, "I": 32, "F": 32, "I;16": 16, "I;16B": 16}


def _pillow_to_array(p: Path, im: Image.Image, icc: bytes | None) -> _Decoded:
    """Convert a loaded Pillow image to an array + layout, recording conversions."""
    mode = im.mode
    info = im.info
    has_key = info.get("transparency") is not None
    if mode in ("L", "RGB") and has_key:
        target = "LA" if mode == "L" else "RGBA"
        return _decoded_from(im.convert(target), f"{mode}->{target}", "transparency key", icc)
    if mode in ("L", "LA", "RGB", "RGBA"):
        return _decoded_from(im, mode, None, icc)
    if mode == "1":
        return _decoded_from(im.convert("L"), "1->L", "1-bit", icc)
    if mode in ("P", "PA"):
        alpha = mode == "PA" or has_key
        palette = im.getpalette() or []
        rgb = np.asarray(palette, dtype=np.uint8).reshape(-1, 3) if palette else None
        gray = rgb is not None and bool(np.all(rgb == rgb[:, :1]))
        target = ("LA" if alpha else "L") if gray else ("RGBA" if alpha else "RGB")
        return _decoded_from(im.convert(target), f"{mode}->{target}", "palette", icc)
    if mode in ("RGBa", "La"):
        target = "RGBA" if mode == "RGBa" else "LA"
        return _decoded_from(im.convert(target), f"{mode}->{target}", "premultiplied alpha", icc)
    if mode == "RGBX":
        return _decoded_from(im.convert("RGB"), "RGBX->RGB", None, icc)
    if mode.startswith("I;16"):
        arr = np.array(im).astype(np.uint16, copy=False)
        return _Decoded(np.ascontiguousarray(arr, dtype=np.uint16), "gray", "I;16", icc=icc)
    if mode == "I":
        arr32 = np.array(im)
        return _Decoded(
            _int_to_uint16(p, arr32, "32-bit integer"), "gray", "I->I;16", "32-bit integer", icc
        )
    if mode == "F":
        return _Decoded(np.array(im, dtype=np.float32), "gray", "F", icc=icc)
    if mode == "CMYK":
        arr = np.array(im, dtype=np.uint8)
        return _Decoded(arr, "cmyk", "CMYK->RGB", "CMYK", icc)
    if mode == "LAB":
        from PIL import ImageCms

        transform = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"),
            ImageCms.createProfile("sRGB"),
            "LAB",
            "RGB",
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        )
        rgb_im = ImageCms.applyTransform(im, transform)
        assert rgb_im is not None
        return _decoded_from(rgb_im, "LAB->RGB", "LAB", None, "sRGB (converted from CIELAB)")
    if mode in ("YCbCr", "HSV"):
        return _decoded_from(im.convert("RGB"), f"{mode}->RGB", mode, icc)
    raise ImageFileError(f"{p}: unsupported pixel format '{mode}'; re-export it as 8 or 16-bit RGB")


_LAYOUT_OF_MODE: Final[dict[str, Layout]] = {
    "L": "gray",
    "LA": "graya",
    "RGB": "rgb",
    "RGBA": "rgba",
}
_LAYOUT_OF_CHANNELS: Final[dict[int, Layout]] = {1: "gray", 2: "graya", 3: "rgb", 4: "rgba"}


def _decoded_from(
    im: Image.Image,
    source_mode: str,
    converted_from: str | None,
    icc: bytes | None = None,
    colorspace: str | None = None,
) -> _Decoded:
    arr = np.array(im)
    layout = _LAYOUT_OF_MODE[im.mode]
    return _Decoded(np.ascontiguousarray(arr), layout, source_mode, converted_from, icc, colorspace)


def _scan_webp(p: Path, size: int) -> bool | None:
    """Validate the RIFF size (truncation) and report whether the WebP is lossless."""
    with _open_for_read(p) as fh:
        head = fh.read(12)
        riff_size = struct.unpack("<I", head[4:8])[0]
        if riff_size + 8 > size:
            raise ImageFileError(
                f"{p}: the file is truncated ({size} of {riff_size + 8} bytes); re-export or "
                "re-download it"
            )
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk = fh.read(8)
            fourcc, length = chunk[:4], struct.unpack("<I", chunk[4:8])[0]
            if fourcc == b"VP8L":
                return True
            if fourcc == b"VP8 ":
                return False
            pos += 8 + length + (length & 1)
    return None


# -- PNG


@dataclass
class _PngInfo:
    width: int = 0
    height: int = 0
    bit_depth: int = 0
    color_type: int = 0
    icc: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None
    xmp: bytes | None = None
    text: list[tuple[str, str]] | None = None
    has_trns: bool = False
    animated: bool = False


def _scan_png(p: Path, fh: IO[bytes], size: int) -> _PngInfo:
    """Walk the chunk list (skipping image data) for the header and metadata."""
    info = _PngInfo(text=[])
    assert info.text is not None
    pos = 8
    seen_ihdr = False
    while True:
        fh.seek(pos)
        hdr = fh.read(8)
        if len(hdr) < 8:
            raise _truncated(p, f"no IEND chunk after {pos} bytes")
        length, ctype = struct.unpack(">I4s", hdr)
        if pos + 12 + length > size:
            raise _truncated(p, f"{ctype.decode('latin-1')} chunk cut at byte {size}")
        if not seen_ihdr:
            if ctype != b"IHDR" or length != 13:
                raise ImageFileError(f"{p}: damaged PNG (no IHDR header); re-export it")
            seen_ihdr = True
        if ctype == b"IEND":
            break
        if ctype in (b"IHDR", b"iCCP", b"pHYs", b"eXIf", b"tEXt", b"zTXt", b"iTXt"):
            data = fh.read(length)
            _png_chunk(info, ctype, data)
        elif ctype == b"tRNS":
            info.has_trns = True
        elif ctype == b"acTL":
            info.animated = True
        pos += 12 + length
    return info


def _png_chunk(info: _PngInfo, ctype: bytes, data: bytes) -> None:
    assert info.text is not None
    if ctype == b"IHDR":
        info.width, info.height, info.bit_depth, info.color_type = struct.unpack(">IIBB", data[:10])
    elif ctype == b"iCCP":
        _, _, rest = data.partition(b"\x00")
        try:
            info.icc = _inflate(rest[1:], 64 << 20) or None
        except zlib.error:
            info.icc = None  # a broken profile must not make the image unreadable
    elif ctype == b"pHYs" and len(data) >= 9:
        ppx, ppy, unit = struct.unpack(">IIB", data[:9])
        if unit == 1 and ppx and ppy:
            info.dpi = _clean_dpi((ppx * 0.0254, ppy * 0.0254))
    elif ctype == b"eXIf":
        info.exif = _exif_payload(data)
    else:
        entry = _png_text(ctype, data)
        if entry is None:
            return
        if entry[0] == _XMP_PNG_KEY:
            info.xmp = entry[1].encode("utf-8")
        else:
            info.text.append(entry)


def _png_text(ctype: bytes, data: bytes) -> tuple[str, str] | None:
    try:
        key_b, _, rest = data.partition(b"\x00")
        key = key_b.decode("latin-1")
        if ctype == b"tEXt":
            return key, rest.decode("latin-1")
        if ctype == b"zTXt":
            return key, _inflate(rest[1:], 16 << 20).decode("latin-1")
        compressed = rest[:1] == b"\x01"
        _lang, _, rest2 = rest[2:].partition(b"\x00")
        _translated, _, text = rest2.partition(b"\x00")
        raw = _inflate(text, 16 << 20) if compressed else text
        return key, raw.decode("utf-8")
    except (zlib.error, UnicodeDecodeError, ValueError):
        return None


def _inflate(data: bytes, limit: int) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(data, limit)
    if d.unconsumed_tail:
        raise zlib.error("decompressed data too large")
    return out


def _read_png(p: Path, size: int) -> tuple[_Decoded, ImageMetadata]:
    with _open_for_read(p) as fh:
        info = _scan_png(p, fh, size)
    _check_dimensions(p, info.width, info.height)
    if info.animated:
        raise ImageFileError(
            f"{p}: animated PNG is not supported; export a single frame as an image"
        )
    if info.bit_depth == 16:
        decoded = _decode_png16(p, info)
    else:
        with _pillow_no_bomb_limit(), Image.open(p, formats=["PNG"]) as im:
            im.load()
            decoded = _pillow_to_array(p, im, info.icc)
    meta = ImageMetadata(
        format="PNG",
        icc_profile=info.icc,
        exif=info.exif,
        dpi=info.dpi,
        source_mode=decoded.source_mode,
        converted_from=decoded.converted_from,
        bit_depth=info.bit_depth,
        xmp=info.xmp,
        png_text=tuple(info.text or ()),
    )
    return decoded, meta


def _decode_png16(p: Path, info: _PngInfo) -> _Decoded:
    import imagecodecs

    arr = imagecodecs.png_decode(p.read_bytes())
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    layout = _LAYOUT_OF_CHANNELS[channels]
    names = {1: "I;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}
    native = {0: 1, 4: 2, 2: 3, 6: 4}.get(info.color_type, channels)
    if channels != native:  # tRNS colour key expanded to alpha by libpng
        return _Decoded(
            arr, layout, f"{names[native]}->{names[channels]}", "transparency key", info.icc
        )
    return _Decoded(arr, layout, names[channels], icc=info.icc)


# -- TIFF


def _read_tiff(p: Path, size: int) -> tuple[_Decoded, ImageMetadata]:
    import tifffile

    with tifffile.TiffFile(p) as tif:
        page = tif.pages.first
        width, height = int(page.imagewidth), int(page.imagelength)
        _check_dimensions(p, width, height)
        ends = [
            int(o) + int(n)
            for o, n in zip(page.dataoffsets, page.databytecounts, strict=False)
            if n
        ]
        if ends and max(ends) > size:
            raise _truncated(p, f"image data end at byte {max(ends)}, the file has {size}")
        photometric = int(page.photometric)
        compression = getattr(page.compression, "name", str(page.compression))
        ycbcr_as_rgb = photometric == 6 and int(page.compression) in (7, 6, 34892)
        if photometric not in (0, 1, 2, 3, 5) and not ycbcr_as_rgb:
            return _read_tiff_pillow(p, size, photometric)
        if photometric == 5 and int(page.tags.valueof(332, 1)) != 1:
            raise ImageFileError(
                f"{p}: multi-ink (non-CMYK) separations are not supported; convert to RGB first"
            )
        icc = page.iccprofile or None
        xmp_value = page.tags.valueof(700)
        dpi = _tiff_dpi(page.tags.valueof(282), page.tags.valueof(283), page.tags.valueof(296, 2))
        bits = int(page.bitspersample)
        extrasamples = tuple(int(e) for e in page.extrasamples)
        colormap = page.colormap
        data = page.asarray()
        shaped = tuple(int(s) for s in page.shaped)
        pages = len(tif.pages)
    decoded = _tiff_array(p, data, shaped, photometric, bits, extrasamples, colormap)
    decoded.icc = icc
    meta = ImageMetadata(
        format="TIFF",
        icc_profile=icc,
        exif=_tiff_exif(p),
        dpi=dpi,
        source_mode=decoded.source_mode,
        converted_from=decoded.converted_from,
        bit_depth=bits,
        xmp=_as_bytes(xmp_value),
        tiff_compression=compression,
        pages=pages,
    )
    return decoded, meta


def _tiff_array(
    p: Path,
    data: Array,
    shaped: tuple[int, ...],
    photometric: int,
    bits: int,
    extrasamples: tuple[int, ...],
    colormap: Array | None,
) -> _Decoded:
    """Turn a tifffile page array into gray/RGB(A)/CMYK(A) samples."""
    sep, depth = shaped[:2]
    if depth != 1:
        raise ImageFileError(f"{p}: volumetric TIFF is not supported; export a 2-D image")
    arr = data.reshape(shaped)[:, 0]
    arr = np.moveaxis(arr[..., 0], 0, -1) if sep > 1 else arr[0]  # planar: S,Y,X -> Y,X,S
    arr = np.ascontiguousarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    samples = 1 if arr.ndim == 2 else arr.shape[2]
    converted: list[str] = []
    arr, dtype_note = _tiff_samples(p, arr, bits, photometric)
    if dtype_note:
        converted.append(dtype_note)
    if photometric == 3:  # palette
        if colormap is None:
            raise ImageFileError(f"{p}: palette TIFF without colour map; re-export it")
        cmap = np.asarray(colormap)
        index = arr if arr.ndim == 2 else arr[..., 0]
        table = (cmap.astype(np.uint32) >> 8).astype(np.uint8)  # TIFF colour maps are 16-bit
        rgb = np.ascontiguousarray(table.T[np.clip(index, 0, table.shape[1] - 1)])
        return _Decoded(rgb, "rgb", "P->RGB", "palette")
    colour = 4 if photometric == 5 else (3 if photometric in (2, 6) else 1)
    if samples < colour:
        raise ImageFileError(
            f"{p}: TIFF with {samples} samples per pixel for a {colour}-channel colour model; "
            "re-export it"
        )
    extra = samples - colour
    if photometric == 0:  # min-is-white
        arr = _invert(arr)
        converted.append("min-is-white")
    if extra > 1:
        arr = np.ascontiguousarray(arr[..., : colour + 1])
        converted.append(f"{extra - 1} extra channel(s) dropped")
    if extra and extrasamples[:1] == (1,):  # associated (premultiplied) alpha
        arr = _unpremultiply(arr, colour)
        converted.append("premultiplied alpha")
    layout: Layout
    if colour == 4:
        layout = "cmyka" if extra else "cmyk"
    else:
        layout = _LAYOUT_OF_CHANNELS[colour + int(bool(extra))]
    mode = _mode_name(layout, arr.dtype)
    if photometric == 5:
        mode = f"{mode}->{'RGBA' if extra else 'RGB'}"
        converted.insert(0, "CMYK")
    return _Decoded(arr, layout, mode, ", ".join(converted) or None)


def _tiff_samples(p: Path, arr: Array, bits: int, photometric: int) -> tuple[Array, str | None]:
    """Map TIFF sample types onto uint8/uint16/float32."""
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if arr.dtype == np.bool_:
        one = np.uint8(1 if photometric == 3 else 255)  # palette: keep 0/1 indices
        return arr.astype(np.uint8) * one, "1-bit"
    if kind == "u" and size == 1:
        if bits < 8 and photometric != 3:
            scale = 255 // ((1 << bits) - 1)
            return (arr * np.uint8(scale)).astype(np.uint8), f"{bits}-bit"
        return arr, None
    if kind == "u" and size == 2:
        if 8 < bits < 16 and photometric != 3:  # e.g. 12-bit: replicate bits to 16
            shift = 16 - bits
            a32 = arr.astype(np.uint32)
            return ((a32 << shift) | (a32 >> (bits - shift))).astype(np.uint16), f"{bits}-bit"
        return np.ascontiguousarray(arr, dtype=np.uint16), None
    if kind == "f":
        if size == 4:
            return np.ascontiguousarray(arr, dtype=np.float32), None
        return arr.astype(np.float32), f"{size * 8}-bit float"
    if kind in "iu":
        return _int_to_uint16(p, arr, f"{size * 8}-bit integer"), f"{size * 8}-bit integer"
    raise ImageFileError(
        f"{p}: unsupported TIFF sample type {arr.dtype}; re-export it as 8 or 16-bit"
    )


def _read_tiff_pillow(p: Path, size: int, photometric: int) -> tuple[_Decoded, ImageMetadata]:
    """Colour models tifffile returns raw (Lab, uncompressed YCbCr...): let Pillow try."""
    names = {
        4: "transparency mask",
        6: "YCbCr",
        8: "CIELab",
        9: "ICCLab",
        10: "ITULab",
        32803: "colour filter array (RAW)",
        32844: "LogL",
        32845: "LogLuv",
        34892: "linear RAW",
    }
    name = names.get(photometric, f"photometric {photometric}")
    try:
        decoded, meta = _read_pillow(p, "TIFF", size)
    except ImageFileError:
        raise
    except _DECODE_ERRORS as exc:
        raise ImageFileError(
            f"{p}: TIFF colour model {name} is not supported; convert it to RGB first"
        ) from exc
    exif = _tiff_exif(p)
    return decoded, ImageMetadata(
        format="TIFF",
        icc_profile=meta.icc_profile,
        exif=exif,
        dpi=meta.dpi,
        source_mode=meta.source_mode,
        converted_from=meta.converted_from,
        pages=meta.pages,
    )


def _tiff_dpi(xres: Any, yres: Any, unit: Any) -> tuple[float, float] | None:
    def value(v: Any) -> float:
        if isinstance(v, tuple) and len(v) == 2:
            return float(v[0]) / float(v[1]) if v[1] else 0.0
        return float(v)

    try:
        if xres is None or yres is None or int(unit) not in (2, 3):
            return None
        factor = 2.54 if int(unit) == 3 else 1.0
        return _clean_dpi((value(xres) * factor, value(yres) * factor))
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def _tiff_exif(p: Path) -> bytes | None:
    """EXIF bytes from a TIFF: IFD0 descriptive tags plus the Exif and GPS sub-IFDs."""
    try:
        with open(p, "rb") as fh:
            src = Image.Exif()
            src.load_from_fp(fh)
            out = Image.Exif()
            for tag in _TIFF_IFD0_EXIF_TAGS:
                if tag in src:
                    out[tag] = src[tag]
            for tag in (_EXIF_IFD, _GPS_IFD):
                if tag in src:
                    sub = dict(src.get_ifd(tag))
                    if tag == _EXIF_IFD and _INTEROP_IFD in sub:
                        sub[_INTEROP_IFD] = dict(src.get_ifd(_INTEROP_IFD))
                    if sub:
                        out[tag] = sub
            if not len(out):
                return None
            return _exif_payload(out.tobytes())
    except Exception:  # EXIF is optional: never fail a read over it
        return None


# -- shared read helpers


def _int_to_uint16(p: Path, arr: Array, what: str) -> Array:
    lo = int(arr.min()) if arr.size else 0
    hi = int(arr.max()) if arr.size else 0
    if lo < 0 or hi > 65535:
        raise ImageFileError(
            f"{p}: {what} samples ({lo}..{hi}) do not fit 16 bits; re-export it as 16-bit or float"
        )
    return np.ascontiguousarray(arr, dtype=np.uint16)


def _invert(arr: Array) -> Array:
    if arr.dtype.kind == "f":
        return np.asarray(1.0 - arr, dtype=np.float32)
    return np.asarray(np.iinfo(arr.dtype).max - arr, dtype=arr.dtype)


def _unpremultiply(arr: Array, colour: int) -> Array:
    out = arr.copy()
    maxv = 1.0 if arr.dtype.kind == "f" else float(np.iinfo(arr.dtype).max)
    for r0, r1 in _strips(arr.shape[0], arr.shape[1]):
        alpha = arr[r0:r1, :, colour : colour + 1].astype(np.float32)
        col = arr[r0:r1, :, :colour].astype(np.float32)
        safe = np.where(alpha > 0, alpha, 1.0)
        val = np.where(alpha > 0, col * (maxv / safe), 0.0)
        if arr.dtype.kind == "f":
            out[r0:r1, :, :colour] = val
        else:
            out[r0:r1, :, :colour] = np.clip(val + 0.5, 0, maxv).astype(arr.dtype)
    return out


def _mode_name(layout: str, dtype: np.dtype[Any]) -> str:
    base = {
        "gray": "L",
        "graya": "LA",
        "rgb": "RGB",
        "rgba": "RGBA",
        "cmyk": "CMYK",
        "cmyka": "CMYKA",
    }[layout]
    if dtype == np.uint8:
        return base
    if dtype == np.uint16:
        return "I;16" if base == "L" else f"{base};16"
    return "F" if base == "L" else f"{base};F"


def _clean_dpi(dpi: Any) -> tuple[float, float] | None:
    try:
        x, y = (float(v) for v in dpi)
    except (TypeError, ValueError):
        return None
    if not (x > 0 and y > 0) or not (np.isfinite(x) and np.isfinite(y)):
        return None
    return (round(x, 2), round(y, 2))


def _as_bytes(value: Any) -> bytes | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value) or None
    if isinstance(value, str):
        return value.encode("utf-8") or None
    return None


def _exif_payload(raw: Any) -> bytes | None:
    """Normalise EXIF to TIFF-structured bytes (no ``Exif\\0\\0`` prefix)."""
    data = _as_bytes(raw)
    if not data:
        return None
    data = re.sub(b"^(Exif\x00\x00)+", b"", data)
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    return data


def _estimate_jpeg_quality(tables: dict[int, Sequence[int]]) -> int | None:
    """IJG quality whose scaled standard tables best match the file's tables."""
    luma = tables.get(0)
    if luma is None or len(luma) != 64:
        return None
    q = np.arange(1, 101)[:, None]
    scale = np.where(q < 50, 5000 // q, 200 - 2 * q)
    err = np.zeros(100)
    for idx, base in ((0, _JPEG_LUMA), (1, _JPEG_CHROMA)):
        table = tables.get(idx)
        if table is None or len(table) != 64:
            continue
        cand = np.clip((np.asarray(base)[None, :] * scale + 50) // 100, 1, 255)
        err += np.abs(cand - np.asarray(table)[None, :]).sum(axis=1)
    return int(np.argmin(err)) + 1


def _jpeg_subsampling(im: Image.Image) -> str | None:
    from PIL import JpegImagePlugin

    try:
        value = JpegImagePlugin.get_sampling(im)
    except (AttributeError, TypeError, ValueError):
        return None
    return {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}.get(value)


def _truncated(p: Path, detail: str) -> ImageFileError:
    return ImageFileError(f"{p}: the file is truncated ({detail}); re-export or re-download it")


_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    RuntimeError,
    IndexError,
    KeyError,
    TypeError,
)
_TRUNCATION_HINTS = (
    "truncated",
    "too small",
    "failed to read",
    "end of file",
    "eof",
    "premature end",
    "not enough data",
    "unexpected end",
    "incomplete",
)


def _decode_error(p: Path, kind: str, exc: BaseException) -> ImageFileError:
    detail = _one_line(exc) or type(exc).__name__
    lowered = detail.lower()
    if isinstance(exc, EOFError) or any(h in lowered for h in _TRUNCATION_HINTS):
        return _truncated(p, detail)
    if isinstance(exc, PermissionError):
        return ImageFileError(f"{p}: permission denied; check the file's permissions")
    if "codec" in lowered or "requires the" in lowered or "not supported" in lowered:
        return ImageFileError(
            f"{p}: this {kind} variant is not supported ({detail}); "
            "re-export it as an uncompressed or LZW/Deflate file"
        )
    return ImageFileError(
        f"{p}: the file is damaged or not a valid {kind} image ({detail}); re-export it"
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc) if not isinstance(exc, OSError) or not exc.strerror else exc.strerror
    return " ".join(text.split())[:200]


# --------------------------------------------------------------------------- colour


def _to_srgb(p: Path, d: _Decoded, meta: ImageMetadata) -> tuple[Array, ImageMetadata]:
    """Convert decoded samples to sRGB gray/RGB(A) and fill the colour metadata."""
    pixels, layout, icc = d.pixels, d.layout, d.icc
    handling: IccHandling = "none"
    colorspace = d.colorspace_override or "sRGB"
    space = _icc_space(icc) if icc else None
    if layout in ("cmyk", "cmyka"):
        usable = space == "CMYK" and _profile_ok(icc)
        if usable:
            assert icc is not None
            pixels = _cms_convert(pixels, icc, "cmyk", _srgb_profile(), "rgb", bpc=True)
            colorspace = _icc_description(icc)
        else:
            pixels = _naive_cmyk_to_rgb(pixels)
            colorspace = "CMYK (converted without a profile)"
        handling = "ignored" if icc else "none"
    elif icc is not None:
        wanted = "GRAY" if layout in ("gray", "graya") else "RGB"
        if space != wanted or not _profile_ok(icc):
            handling = "ignored"
            reason = "unreadable" if space == wanted else f"{space or 'invalid'}"
            colorspace = f"sRGB ({reason} embedded profile ignored)"
        elif _is_srgb_like(icc, wanted == "GRAY"):
            handling = "srgb"
        else:
            cs = "gray" if wanted == "GRAY" else "rgb"
            pixels = _cms_convert(pixels, icc, cs, _srgb_profile(), "rgb")
            handling = "converted"
            colorspace = _icc_description(icc)
    meta = _replace(meta, colorspace=colorspace, icc_handling=handling)
    return np.ascontiguousarray(pixels), meta


def _from_srgb(arr: Array, meta: ImageMetadata | None) -> tuple[Array, bytes | None]:
    """Undo :func:`_to_srgb` for writing; return pixels and the profile to embed."""
    if meta is None or meta.icc_profile is None:
        return arr, None
    icc = meta.icc_profile
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    wanted = "GRAY" if channels <= 2 else "RGB"
    if _icc_space(icc) != wanted:
        return arr, None
    if meta.icc_handling == "srgb":
        return arr, icc
    if meta.icc_handling != "converted":
        return arr, None
    cs = "gray" if wanted == "GRAY" else "rgb"
    try:
        return _cms_convert(arr, _srgb_profile(), "rgb", icc, cs), icc
    except (RuntimeError, ValueError):
        return arr, None  # untagged sRGB is still colour-correct


def _icc_space(icc: bytes) -> str | None:
    if len(icc) < 128 or icc[36:40] != b"acsp":
        return None
    return icc[16:20].decode("latin-1").strip() or None


@lru_cache(maxsize=32)
def _profile_ok(icc: bytes | None) -> bool:
    if not icc:
        return False
    import imagecodecs

    try:
        imagecodecs.cms_profile_validate(icc)
    except (RuntimeError, ValueError):
        return False
    return True


@lru_cache(maxsize=1)
def _srgb_profile() -> bytes:
    import imagecodecs

    return imagecodecs.cms_profile("srgb")


@lru_cache(maxsize=32)
def _is_srgb_like(icc: bytes, gray: bool) -> bool:
    """Whether ``icc`` maps test colours to sRGB within half an 8-bit level."""
    if gray:
        probe = np.linspace(0.0, 1.0, 33, dtype=np.float32)[None, :]
        expected = np.repeat(probe[..., None], 3, axis=-1)
    else:
        g = np.linspace(0.0, 1.0, 9, dtype=np.float32)
        probe = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(1, -1, 3)
        expected = probe
    try:
        out = _cms_call(probe, icc, "gray" if gray else "rgb", _srgb_profile(), "rgb")
    except (RuntimeError, ValueError):
        return False
    return float(np.max(np.abs(out - expected))) <= 0.5 / 255


@lru_cache(maxsize=32)
def _icc_description(icc: bytes) -> str:
    from PIL import ImageCms

    try:
        desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except (OSError, ImageCms.PyCMSError, TypeError, ValueError):
        desc = ""
    desc = " ".join(desc.split())
    return desc or "embedded ICC profile"


def _cms_call(
    data: Array, src: bytes, src_cs: str, dst: bytes, dst_cs: str, *, bpc: bool = False
) -> Array:
    import imagecodecs

    flags = int(imagecodecs.CMS.FLAGS.NOOPTIMIZE)
    if bpc:
        flags |= int(imagecodecs.CMS.FLAGS.BLACKPOINTCOMPENSATION)
    return imagecodecs.cms_transform(
        data,
        src,
        dst,
        colorspace=src_cs,
        outcolorspace=dst_cs,
        intent=imagecodecs.CMS.INTENT.RELATIVE_COLORIMETRIC,
        flags=flags,
    )


def _cms_convert(
    pixels: Array, src: bytes, src_cs: str, dst: bytes, dst_cs: str, *, bpc: bool = False
) -> Array:
    """Colour-convert the colour channels of ``pixels`` strip by strip; copy alpha.

    ``src_cs``/``dst_cs`` name the *profiles'* spaces (``"gray"``, ``"rgb"``,
    ``"cmyk"``). Gray pixels stay gray: read through a gray profile into sRGB they come
    back as the G channel of the RGB result; written from sRGB into a gray profile they
    are presented as R=G=B. Strips run in threads (LittleCMS releases the GIL).
    """
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    n_in = 4 if src_cs == "cmyk" else (1 if channels <= 2 else 3)
    has_alpha = channels > n_in
    n_out = 1 if n_in == 1 else 3
    h, w = pixels.shape[:2]
    out_channels = n_out + int(has_alpha)
    out = np.empty((h, w, out_channels) if out_channels > 1 else (h, w), dtype=pixels.dtype)
    is_float = pixels.dtype.kind == "f"
    lcms_out = "rgb" if src_cs == "gray" else dst_cs

    def work(rows: tuple[int, int]) -> None:
        r0, r1 = rows
        if pixels.ndim == 2:
            strip = pixels[r0:r1]
        elif n_in == 1:
            strip = pixels[r0:r1, :, 0]
        else:
            strip = pixels[r0:r1, :, :n_in]
        strip = np.ascontiguousarray(strip)
        if is_float:
            strip = np.nan_to_num(np.clip(strip, 0.0, 1.0), nan=0.0).astype(np.float32)
        if n_in == 1 and src_cs == "rgb":
            strip = np.repeat(strip[..., None], 3, axis=-1)
        res = _cms_call(strip, src, src_cs, dst, lcms_out, bpc=bpc)
        if n_out == 1 and res.ndim == 3:
            res = res[..., 1]
        if is_float:
            res = np.clip(res, 0.0, 1.0)
        if out.ndim == 2:
            out[r0:r1] = res
        elif n_out == 1:
            out[r0:r1, :, 0] = res
        else:
            out[r0:r1, :, :n_out] = res

    strips = list(_strips(h, w))
    workers = min(len(strips), os.cpu_count() or 1, 8)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(work, strips))
    else:
        for rows in strips:
            work(rows)
    if has_alpha:
        out[..., -1] = pixels[..., -1]
    return out


def _naive_cmyk_to_rgb(pixels: Array) -> Array:
    """``RGB = (1 - C)(1 - K)`` for CMYK without a profile; alpha copied."""
    h, w, channels = pixels.shape
    out = np.empty((h, w, channels - 1), dtype=pixels.dtype)
    maxv = 1.0 if pixels.dtype.kind == "f" else float(np.iinfo(pixels.dtype).max)
    for r0, r1 in _strips(h, w):
        s = pixels[r0:r1].astype(np.float32) / maxv
        rgb = (1.0 - s[..., :3]) * (1.0 - s[..., 3:4])
        if pixels.dtype.kind == "f":
            out[r0:r1, :, :3] = np.clip(rgb, 0.0, 1.0)
        else:
            out[r0:r1, :, :3] = (np.clip(rgb, 0.0, 1.0) * maxv + 0.5).astype(pixels.dtype)
    if channels == 5:
        out[..., 3] = pixels[..., 4]
    return out


def _strips(height: int, width: int) -> Iterator[tuple[int, int]]:
    rows = max(1, _STRIP_PIXELS // max(1, width))
    for r0 in range(0, height, rows):
        yield r0, min(height, r0 + rows)


def _replace(meta: ImageMetadata, **changes: Any) -> ImageMetadata:
    from dataclasses import replace

    return replace(meta, **changes)


# --------------------------------------------------------------------------- writing


def _normalise_format(p: Path, fmt: str) -> str:
    name = _FORMAT_ALIASES.get(str(fmt).strip().lstrip(".").upper())
    if name is None:
        raise ImageFileError(f"{p}: unsupported format {fmt!r}; use JPEG, PNG, TIFF, WEBP or BMP")
    return name


def _validate_pixels(p: Path, pixels: Any) -> Array:
    if not isinstance(pixels, np.ndarray):
        raise ImageFileError(f"{p}: pixels must be a numpy array, got {type(pixels).__name__}")
    arr = pixels
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        raise ImageFileError(
            f"{p}: pixels must be H×W, H×W×2, H×W×3 or H×W×4, got shape {pixels.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageFileError(f"{p}: the image has no pixels (shape {pixels.shape})")
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    if arr.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageFileError(f"{p}: pixels must be uint8, uint16 or float32, got {pixels.dtype}")
    return np.ascontiguousarray(arr)


def _check_target(p: Path, overwrite: bool) -> None:
    folder = p.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ImageFileError(f"{p}: the folder {folder} {what}; create it or choose another")
    if p.is_dir():
        raise ImageFileError(f"{p}: is a folder; choose a file name inside it")
    if p.exists() and not overwrite:
        raise FileExistsError(_exists_message(p))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _not_writable(p)


def _exists_message(p: Path) -> str:
    return f"{p}: the file already exists; choose another name or allow overwriting it"


def _not_writable(p: Path) -> ImageFileError:
    return ImageFileError(
        f"{p}: the folder {p.parent} is not writable; choose another folder or fix its permissions"
    )


def _adapt_layout(p: Path, arr: Array, fmt: str) -> Array:
    """Drop opaque alpha / refuse transparency for JPEG & BMP; gray -> RGB for WebP."""
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if fmt in ("JPEG", "BMP") and channels in (2, 4):
        alpha = arr[..., -1]
        opaque = 1.0 if arr.dtype.kind == "f" else np.iinfo(arr.dtype).max
        if not bool(np.all(alpha >= opaque)):
            raise ImageFileError(
                f"{p}: {fmt} cannot store transparency; save as .png, .tif or .webp, or "
                "remove the alpha channel first"
            )
        arr = np.ascontiguousarray(arr[..., :-1])
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
    if fmt == "WEBP" and channels <= 2:
        arr = _to_rgb(arr)
    return arr


def _quantise(arr: Array, dtype: type[np.unsignedinteger[Any]]) -> Array:
    """Round to ``uint8``/``uint16``: ``round(v / 257)`` or ``round(clip(x)·max)``."""
    if arr.dtype == dtype:
        return arr
    out = np.empty(arr.shape, dtype=dtype)
    maxv = float(np.iinfo(dtype).max)
    width = arr.shape[1]
    for r0, r1 in _strips(arr.shape[0], width):
        s = arr[r0:r1]
        if s.dtype.kind == "f":
            v = np.nan_to_num(np.clip(s, 0.0, 1.0), nan=0.0).astype(np.float64)
            out[r0:r1] = (v * maxv + 0.5).astype(dtype)  # round half up, in float64
        elif s.dtype == np.uint16 and dtype is np.uint8:
            out[r0:r1] = ((s.astype(np.uint32) + 128) // 257).astype(np.uint8)
        else:  # uint8 -> uint16
            out[r0:r1] = s.astype(np.uint16) * np.uint16(257)
    return out


def _to_rgb(arr: Array) -> Array:
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=-1)
    if arr.shape[2] == 2:
        return np.ascontiguousarray(arr[..., [0, 0, 0, 1]])
    return arr


_PIL_MODES: Final[dict[int, str]] = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def _encode_jpeg(
    fh: IO[bytes], arr: Array, meta: ImageMetadata, icc: bytes | None, quality: int | None
) -> None:
    a8 = _quantise(arr, np.uint8)
    q = quality or meta.jpeg_quality or _DEFAULT_JPEG_QUALITY
    sub = meta.jpeg_subsampling or ("4:4:4" if q >= 90 else "4:2:0")
    params: dict[str, Any] = {"quality": q, "optimize": True}
    if a8.ndim == 3:
        params["subsampling"] = sub
    _common_pillow_params(params, meta, icc, dpi=True, xmp=True)
    exif = params.pop("exif", None)
    if exif is not None:
        exif = _fit_jpeg_exif(exif)
        if exif is not None:
            params["exif"] = exif
    Image.fromarray(a8, _PIL_MODES[1 if a8.ndim == 2 else a8.shape[2]]).save(
        fh, format="JPEG", **params
    )


def _fit_jpeg_exif(exif: bytes) -> bytes | None:
    """EXIF in a JPEG must fit one 64 kB APP1 segment: drop the thumbnail if needed."""
    if len(exif) <= 65000:
        return exif
    try:
        ex = Image.Exif()
        ex.load(exif)
        for tag in (_EXIF_IFD, _GPS_IFD):
            if tag in ex:
                ex[tag] = dict(ex.get_ifd(tag))
        slim = ex.tobytes()
    except Exception:  # best effort
        return None
    return slim if len(slim) <= 65000 else None


def _common_pillow_params(
    params: dict[str, Any], meta: ImageMetadata, icc: bytes | None, *, dpi: bool, xmp: bool
) -> None:
    if icc:
        params["icc_profile"] = icc
    if meta.exif:
        params["exif"] = _EXIF_HEADER + meta.exif
    if dpi and meta.dpi:
        params["dpi"] = meta.dpi
    if xmp and meta.xmp:
        params["xmp"] = meta.xmp


def _encode_webp(
    fh: IO[bytes], arr: Array, meta: ImageMetadata, icc: bytes | None, quality: int | None
) -> None:
    a8 = _quantise(arr, np.uint8)
    params: dict[str, Any] = {"method": 4, "exact": True}
    if quality is None and meta.format == "WEBP" and meta.webp_lossless:
        params["lossless"] = True
    elif quality == 100:
        params["lossless"] = True
    else:
        params["quality"] = quality or _DEFAULT_WEBP_QUALITY
    _common_pillow_params(params, meta, icc, dpi=False, xmp=True)
    if "exif" in params:
        params["exif"] = params["exif"][len(_EXIF_HEADER) :]  # WebP EXIF has no prefix
    Image.fromarray(a8, _PIL_MODES[a8.shape[2]]).save(fh, format="WEBP", **params)


def _encode_bmp(
    fh: IO[bytes], arr: Array, meta: ImageMetadata, icc: bytes | None, quality: int | None
) -> None:
    a8 = _quantise(arr, np.uint8)
    params: dict[str, Any] = {}
    if meta.dpi:
        params["dpi"] = meta.dpi
    Image.fromarray(a8, _PIL_MODES[1 if a8.ndim == 2 else a8.shape[2]]).save(
        fh, format="BMP", **params
    )


def _encode_png(
    fh: IO[bytes], arr: Array, meta: ImageMetadata, icc: bytes | None, quality: int | None
) -> None:
    import imagecodecs

    data = arr if arr.dtype != np.float32 else _quantise(arr, np.uint16)
    level = _PNG_LEVEL_8BIT if data.dtype == np.uint8 else _PNG_LEVEL_16BIT
    encoded = memoryview(imagecodecs.png_encode(data, level=level))
    if bytes(encoded[12:16]) != b"IHDR":
        raise ValueError("unexpected PNG encoder output")
    fh.write(encoded[:33])  # signature + IHDR
    for ctype, payload in _png_metadata_chunks(meta, icc):
        fh.write(_png_chunk_bytes(ctype, payload))
    fh.write(encoded[33:])


def _png_metadata_chunks(meta: ImageMetadata, icc: bytes | None) -> Iterator[tuple[bytes, bytes]]:
    if icc:
        yield b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc, 9)
    if meta.dpi:
        ppx, ppy = (max(1, round(v / 0.0254)) for v in meta.dpi)
        yield b"pHYs", struct.pack(">IIB", ppx, ppy, 1)
    if meta.exif:
        yield b"eXIf", meta.exif
    if meta.xmp:
        yield b"iTXt", _XMP_PNG_KEY.encode("latin-1") + b"\x00\x00\x00\x00\x00" + meta.xmp
    for key, text in meta.png_text:
        try:
            k = key.encode("latin-1")[:79]
        except UnicodeEncodeError:
            continue
        if not k:
            continue
        try:
            yield b"tEXt", k + b"\x00" + text.encode("latin-1")
        except UnicodeEncodeError:
            yield b"iTXt", k + b"\x00\x00\x00\x00\x00" + text.encode("utf-8")


def _png_chunk_bytes(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(ctype)) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


def _encode_tiff(
    fh: IO[bytes], arr: Array, meta: ImageMetadata, icc: bytes | None, quality: int | None
) -> None:
    import tifffile

    channels = 1 if arr.ndim == 2 else arr.shape[2]
    compression = None
    if meta.format == "TIFF" and meta.tiff_compression:
        compression = _TIFF_KEEP_COMPRESSION.get(meta.tiff_compression.upper(), "zlib")
    row_bytes = arr.shape[1] * channels * arr.dtype.itemsize
    extratags, subifds = _tiff_exif_tags(meta.exif)
    if meta.xmp:
        extratags.append((700, "B", len(meta.xmp), meta.xmp, True))
    kwargs: dict[str, Any] = {}
    if meta.dpi:
        kwargs["resolution"] = meta.dpi
        kwargs["resolutionunit"] = "INCH"
    start = fh.tell()
    tifffile.imwrite(
        fh,
        arr,
        byteorder="<",
        photometric="minisblack" if channels <= 2 else "rgb",
        planarconfig="contig" if channels > 1 else None,
        extrasamples=("unassalpha",) if channels in (2, 4) else None,
        compression=compression,
        predictor=True if compression in ("lzw", "zlib") else None,
        rowsperstrip=max(1, (1 << 20) // max(1, row_bytes)),
        iccprofile=icc,
        metadata=None,
        software=False,
        extratags=extratags,
        **kwargs,
    )
    if subifds:
        _append_tiff_subifds(fh, start, subifds)


def _tiff_exif_tags(
    exif: bytes | None,
) -> tuple[list[tuple[Any, ...]], dict[int, dict[int, Any]]]:
    """IFD0 extratags and sub-IFDs (Exif, GPS) for a TIFF from EXIF bytes."""
    tags: list[tuple[Any, ...]] = []
    subifds: dict[int, dict[int, Any]] = {}
    if not exif:
        return tags, subifds
    try:
        ex = Image.Exif()
        ex.load(exif)
        for tag, dtype in _TIFF_IFD0_EXIF_TAGS.items():
            value = ex.get(tag)
            if value is None:
                continue
            if dtype == "s":
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                text = text.rstrip("\x00")
                if text:
                    tags.append((tag, "s", 0, text.encode("utf-8"), True))
            else:
                tags.append((tag, "H", 1, int(value), True))
        for tag, name in ((_EXIF_IFD, "ExifTag"), (_GPS_IFD, "GPSTag")):
            sub = dict(ex.get_ifd(tag)) if tag in ex else {}
            if tag == _EXIF_IFD and _INTEROP_IFD in sub:
                sub[_INTEROP_IFD] = dict(ex.get_ifd(_INTEROP_IFD))
            if sub:
                subifds[tag] = sub
                # placeholder, patched by _append_tiff_subifds (by name: tifffile filters
                # IFD tags given by code)
                tags.append((name, 4, 1, 0, True))
    except Exception:  # damaged EXIF is dropped, not fatal
        return [t for t in tags if not isinstance(t[0], str)], {}
    return tags, subifds


def _append_tiff_subifds(fh: IO[bytes], start: int, subifds: dict[int, dict[int, Any]]) -> None:
    """Append EXIF/GPS IFDs after a classic little-endian TIFF and point IFD0 at them."""
    from PIL import TiffImagePlugin

    fh.seek(start)
    head = fh.read(8)
    if head[:4] != b"II*\x00":
        return  # BigTIFF (> 4 GB) or unexpected: keep the IFD0 tags only
    ifd0 = struct.unpack("<I", head[4:8])[0]
    fh.seek(start + ifd0)
    (count,) = struct.unpack("<H", fh.read(2))
    entries = fh.read(12 * count)
    slots: dict[int, int] = {}
    for i in range(count):
        tag = struct.unpack("<H", entries[12 * i : 12 * i + 2])[0]
        if tag in subifds:
            slots[tag] = start + ifd0 + 2 + 12 * i + 8
    for tag, values in subifds.items():
        if tag not in slots:
            continue
        fh.seek(0, os.SEEK_END)
        pos = fh.tell()
        if pos & 1:
            fh.write(b"\x00")
            pos += 1
        ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=b"II*\x00\x08\x00\x00\x00", group=tag)
        for key, value in values.items():
            ifd[key] = value
        blob = ifd.tobytes(pos - start)
        if pos - start + len(blob) > 0xFFFFFFFF:
            return
        fh.write(blob)
        fh.seek(slots[tag])
        fh.write(struct.pack("<I", pos - start))
    fh.seek(0, os.SEEK_END)


_Encoder: TypeAlias = Callable[
    [IO[bytes], Array, ImageMetadata, "bytes | None", "int | None"], None
]
_ENCODERS: Final[dict[str, _Encoder]] = {
    "JPEG": _encode_jpeg,
    "PNG": _encode_png,
    "TIFF": _encode_tiff,
    "WEBP": _encode_webp,
    "BMP": _encode_bmp,
}


def _atomic_write(target: Path, write: Callable[[IO[bytes]], None], overwrite: bool) -> None:
    """Encode into a hidden temporary file beside ``target``, fsync, then move it in."""
    folder = target.parent
    tmp = folder / f".{target.name}.tmp-{secrets.token_hex(6)}"
    try:
        fh = open(tmp, "x+b")  # O_CREAT | O_EXCL; a named handle (tifffile wants a name)
    except PermissionError:
        raise _not_writable(target) from None
    except OSError as exc:
        if exc.errno == errno.EROFS:
            raise _not_writable(target) from None
        raise
    try:
        with fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            _keep_mode(target, tmp)
            try:
                os.replace(tmp, target)
            except PermissionError:
                raise ImageFileError(
                    f"{target}: cannot replace the existing file (read-only, or open in another "
                    "program); close it or choose another name"
                ) from None
        else:
            _move_no_clobber(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(folder)


def remove_linked_temporaries(folder: Path) -> list[Path]:
    """Remove the ``.NAME.tmp-XXXX`` files of ``folder`` that are hard links of ``NAME``.

    An atomic write links its temporary to the target and then unlinks the temporary; a
    process killed between the two leaves the temporary behind. Such a file is the same
    inode as the target, so removing it loses nothing (a temporary whose write did not
    finish is not a link of anything and is left to the batch journal). Returns the
    files removed.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not name.startswith(".") or ".tmp-" not in name:
            continue
        target = folder / name[1:].rsplit(".tmp-", 1)[0]
        try:
            a, b = entry.stat(follow_symlinks=False), os.stat(target, follow_symlinks=False)
        except OSError:
            continue
        if (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev) and a.st_nlink >= 2:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _move_no_clobber(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target`` unless it exists: atomic via a hard link when possible."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise FileExistsError(_exists_message(target)) from None
    except OSError:
        # No hard links here (FAT, some network shares): check-then-replace instead.
        if os.path.lexists(target):
            raise FileExistsError(_exists_message(target)) from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def _keep_mode(target: Path, tmp: Path) -> None:
    try:
        os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
    except OSError:
        pass


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _os_write_error(p: Path, exc: OSError) -> ImageFileError:
    if exc.errno == errno.ENOSPC:
        return ImageFileError(f"{p}: the disk is full; free some space or choose another drive")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return _not_writable(p)
    if exc.errno == errno.ENAMETOOLONG:
        return ImageFileError(f"{p}: the file name is too long; choose a shorter one")
    return ImageFileError(f"{p}: could not write the file ({_one_line(exc)}); check the folder")
