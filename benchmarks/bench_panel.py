"""Panel slider (issue #7): one strength step on a 12-megapixel 16-bit photo.

Moving the slider re-blends the cached result of a screen-sized preview and repaints;
target <= 16 ms per update. Runs the real Qt widgets offscreen.
Usage: ``QT_QPA_PLATFORM=offscreen python benchmarks/bench_panel.py``.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt6.QtWidgets import QApplication

from plugin.panel.preview import PreviewSource
from plugin.panel.viewer import CompareView

from _common import table


def main() -> None:
    app = QApplication([])
    rng = np.random.default_rng(0)
    original = (rng.random((3000, 4000, 3)) * 20000).astype(np.uint16)
    enhanced = (original.astype(np.uint32) * 3 // 2).astype(np.uint16)
    view = CompareView()
    view.resize(1280, 800)
    view.show()
    app.processEvents()
    source = PreviewSource(original)
    source.set_enhanced(enhanced)
    view.set_source(source)
    view.refresh()
    times = []
    for i in range(60):
        t0 = time.perf_counter()
        view.set_strength(0.2 + i * 0.01)
        view.repaint()
        times.append(time.perf_counter() - t0)
    shown = (source.detail or source.overview).before
    print("# Panel slider step: re-blend the cached screen preview + repaint, offscreen Qt\n")
    print(table(["photo", "preview", "median ms", "min ms", "max ms"],
                [["4000x3000 uint16", f"{shown.shape[1]}x{shown.shape[0]}",
                  statistics.median(times) * 1000, min(times) * 1000, max(times) * 1000]]))


if __name__ == "__main__":
    main()
