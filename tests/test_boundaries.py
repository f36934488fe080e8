"""Architectural boundaries: which side of the product may import what.

* clients (the ``lowlight`` CLI front, the panel, the GIMP plug-in, the worker client)
  never import torch;
* :mod:`hybridnet` never imports ZeroMQ or Qt.

Each check runs in a fresh interpreter so earlier imports cannot hide a violation.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imported_after(modules: list[str]) -> set[str]:
    code = (
        "import sys, importlib\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(out.stdout.split())


def _top(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


TORCH_FREE = [
    "lowlight",
    "lowlight.cli",
    "hybridnet",
    "hybridnet.config",
    "hybridnet.errors",
    "hybridnet.contract",
    "worker",
    "worker.protocol",
    "worker.client",
    "worker.cli",
    # the batch engine and `lowlight batch`: numpy, the worker client, image files
    "plugin.batch",
    "plugin.batch_cmd",
    # the desktop panel: Qt and the worker client, never torch
    "plugin.panel.app",
    "plugin.panel.main_window",
    "plugin.panel.worker_link",
]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_client_side_modules_do_not_import_torch(module: str) -> None:
    assert "torch" not in _top(_imported_after([module]))


def test_panel_module_does_not_import_qt_until_it_runs() -> None:
    """``lowlight --help`` registers ``panel`` without loading Qt (or torch)."""
    loaded = _top(_imported_after(["plugin.panel.app", "plugin.batch_cmd"]))
    assert not loaded & {"torch", "PyQt6"}


def test_cli_help_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom lowlight.cli import build_parser\nbuild_parser().format_help()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_hybridnet_never_imports_zmq_or_qt() -> None:
    import hybridnet

    modules = [
        f"hybridnet.{m.name}"
        for m in pkgutil.iter_modules(hybridnet.__path__)
        if m.name != "_triton_scan"
    ]
    loaded = _top(_imported_after(modules))
    assert "torch" in loaded  # the check really imported the model side
    assert not loaded & {"zmq", "PyQt6", "PySide6", "msgpack"}


def test_worker_client_side_imports_neither_torch_nor_qt() -> None:
    loaded = _top(_imported_after(["worker.client", "worker.protocol", "worker.cli"]))
    assert "zmq" in loaded  # the check really imported the client
    assert not loaded & {"torch", "PyQt6", "PySide6"}


def test_worker_server_never_imports_qt() -> None:
    code = (
        "import sys\nfrom worker.server import load_model\nimport hybridnet.enhancer\n"
        "bad = {m.split('.')[0] for m in sys.modules} & {'PyQt6', 'PySide6', 'PyQt5'}\n"
        "assert not bad, bad\nassert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_worker_cli_help_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom worker.cli import main\n"
        "try:\n    main(['start', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)


def test_package_names_never_shadow_submodules() -> None:
    """``from hybridnet import X`` must give the same object whatever was imported before.

    A lazily exported name equal to a submodule's name (once, ``hybridnet.spatial_rnn``
    the function vs. the module) resolves to the module once that submodule is imported,
    so the result would depend on import order.
    """
    import hybridnet

    submodules = {m.name for m in pkgutil.iter_modules(hybridnet.__path__)}
    assert not set(hybridnet.__all__) & submodules
