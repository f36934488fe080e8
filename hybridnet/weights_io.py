"""Save and load :class:`~hybridnet.HybridNet` weights as safetensors (never pickle).

The file's metadata (a string-to-string map in the safetensors header) carries:

* ``format`` = ``"hybridnet"`` and ``format_version`` -- so a foreign file is refused
  with a clear message instead of a wall of missing keys;
* ``config`` -- the :class:`~hybridnet.HybridNetConfig` as JSON; loading rebuilds the
  network from it, so a weights file is self-describing;
* ``hybridnet_version`` and any extra entries the caller adds (a model card summary,
  training provenance).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Final

import torch

from hybridnet.config import HybridNetConfig
from hybridnet.errors import WeightsError
from hybridnet.hybrid_network import HybridNet
from lowlight import __version__

FORMAT_NAME: Final = "hybridnet"
FORMAT_VERSION: Final = "1"
#: Weights smaller than this in magnitude are stored and loaded as exactly 0
#: (:func:`flush_tiny`).
TINY: Final = 1e-20


def save_model(
    model: HybridNet,
    path: str | os.PathLike[str],
    *,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``model``'s weights and config to ``path`` atomically (temp file + rename).

    Args:
        model: the network to save (any device; tensors are copied to the CPU).
        path: target file, conventionally ``*.safetensors``.
        metadata: extra string entries for the header (must not shadow the reserved keys).

    Returns:
        The path written.
    """
    from safetensors.torch import save_file

    target = Path(path)
    extra = dict(metadata or {})
    reserved = {"format", "format_version", "config", "hybridnet_version"}
    clash = reserved & set(extra)
    if clash:
        raise ValueError(f"metadata keys {sorted(clash)} are reserved")
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_json(),
        "hybridnet_version": __version__,
        **extra,
    }
    state = flush_tiny(
        {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()})
    return atomic_write(target, lambda tmp: save_file(state, tmp, metadata=header))


def atomic_write(target: Path, write: Callable[[str], object]) -> Path:
    """Call ``write(temporary path)`` in ``target``'s folder, fsync, then rename over
    ``target``: a crash leaves the previous file or the new one, never half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # Created 0666 so the kernel applies the umask, as for any saved file (mkstemp would
    # make it 0600, and reading the umask means changing it for every thread). Some
    # writers (safetensors) replace the file with a 0600 one: its mode is put back.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        mode = os.stat(tmp).st_mode & 0o777
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The header metadata of a HybridNet weights file (validated as ours)."""
    source = _existing(path)
    from safetensors import safe_open

    try:
        with safe_open(str(source), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as exc:
        raise _unreadable(source, exc) from exc
    _check_ours(source, meta)
    return meta


def load_model(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    expected_config: HybridNetConfig | None = None,
) -> HybridNet:
    """Rebuild a :class:`HybridNet` from a weights file, in eval mode, on ``device``.

    Args:
        path: a file written by :func:`save_model`.
        device: where to put the network.
        expected_config: when given, the file's config must equal it.

    Raises:
        WeightsError: missing, truncated or foreign file, a config this version cannot
            build, a config other than ``expected_config``, or tensors that do not fit
            the config (names or shapes).
    """
    from safetensors import safe_open

    source = _existing(path)
    try:
        with safe_open(str(source), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            _check_ours(source, meta)
            state = {k: f.get_tensor(k) for k in f.keys()}
    except WeightsError:
        raise
    except Exception as exc:
        raise _unreadable(source, exc) from exc
    try:
        config = HybridNetConfig.from_json(meta["config"])
    except (ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{source}: its model config cannot be used ({exc})") from exc
    if expected_config is not None and config != expected_config:
        raise WeightsError(
            f"{source} was trained with a different configuration ({config}) than the one "
            f"expected ({expected_config}); pass the matching weights file"
        )
    model = HybridNet(config)
    _check_state(source, model, state)
    _check_finite(source, state)
    state = flush_tiny(state)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def flush_tiny(state: dict[str, torch.Tensor], tiny: float = TINY) -> dict[str, torch.Tensor]:
    r"""``state`` with every floating-point value of magnitude below ``tiny`` set to 0.

    Weight decay drives the weights that get little gradient towards zero without
    reaching it; below about :math:`10^{-20}` they contribute nothing a float32 output
    can show (an activation of order 1 times :math:`10^{-20}` is :math:`2^{-66}`, under
    the last bit of any value near 1), but their products with activations fall into
    the denormal range (below :math:`1.2 \cdot 10^{-38}`), which CPUs compute tens of
    times slower: a network with many of them ran 3-4x slower with no visible
    difference in its output. Saving and loading both flush, so no weights file can
    bring them back.
    """
    out = {}
    for name, t in state.items():
        if t.is_floating_point():
            t = torch.where(t.abs() < tiny, torch.zeros((), dtype=t.dtype), t)
        out[name] = t
    return out


# --------------------------------------------------------------------------- internals


def _check_finite(source: Path, state: dict[str, torch.Tensor]) -> None:
    bad = sorted(k for k, t in state.items() if t.is_floating_point() and not t.isfinite().all())
    if bad:
        raise WeightsError(
            f"{source} holds NaN or infinite weights ({len(bad)} tensors, e.g. {bad[0]}): "
            "the training that wrote it diverged; use an earlier checkpoint or another file"
        )


def _existing(path: str | os.PathLike[str]) -> Path:
    source = Path(path)
    if not source.exists():
        raise WeightsError(f"weights file {source} does not exist; check the path")
    if not source.is_file():
        raise WeightsError(f"weights path {source} is not a file")
    return source


def _unreadable(source: Path, exc: Exception) -> WeightsError:
    size = source.stat().st_size
    return WeightsError(
        f"{source} is not a readable safetensors file ({size} bytes: {exc}); it may be "
        "truncated or corrupt (copy or download it again) or not a HybridNet weights file"
    )


def _check_ours(source: Path, meta: dict[str, str]) -> None:
    if meta.get("format") != FORMAT_NAME or "config" not in meta:
        raise WeightsError(
            f"{source} is a safetensors file but not HybridNet weights (its header has no "
            "HybridNet format marker and config); pass a file saved by hybridnet.save_model"
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise WeightsError(
            f"{source} uses weights format version {meta.get('format_version')!r}; this "
            f"version of Enhance Low Light reads version {FORMAT_VERSION}: update the program"
        )


def _check_state(source: Path, model: HybridNet, state: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    )
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensors (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
    if wrong:
        problems.append(f"{len(wrong)} tensors of the wrong shape (e.g. {wrong[0]})")
    if problems:
        raise WeightsError(
            f"{source} does not match the config stored in it: " + "; ".join(problems)
            + ". The file was edited or written by an incompatible tool; use the original file"
        )
