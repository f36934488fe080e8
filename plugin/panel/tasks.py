"""Run a blocking function off the GUI thread and get its result back as a callback.

Reading a 50-megapixel TIFF or writing a 16-bit PNG takes seconds; :func:`run_task` runs
it in Qt's global thread pool and calls ``done(result)`` or ``error(exception)`` in the
GUI thread, so the window keeps answering.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PyQt6.QtCore import QObject, QRunnable, QThreadPool, pyqtSignal

_alive: set[Task] = set()


class _Signals(QObject):
    done = pyqtSignal(object)
    error = pyqtSignal(object)


class Task(QRunnable):
    """One function call in the pool; see :func:`run_task`."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.fn = fn
        self.signals = _Signals()
        self.finished = False

    def run(self) -> None:
        try:
            result = self.fn()
        except BaseException as exc:  # delivered to the GUI thread, never lost
            self.signals.error.emit(exc)
        else:
            self.signals.done.emit(result)


def run_task(
    fn: Callable[[], Any],
    done: Callable[[Any], None],
    error: Callable[[BaseException], None],
) -> Task:
    """Run ``fn()`` in the pool; ``done``/``error`` are called in the GUI thread."""
    task = Task(fn)

    def finish_ok(result: Any) -> None:
        _alive.discard(task)
        task.finished = True
        done(result)

    def finish_error(exc: BaseException) -> None:
        _alive.discard(task)
        task.finished = True
        error(exc)

    task.signals.done.connect(finish_ok)
    task.signals.error.connect(finish_error)
    _alive.add(task)
    QThreadPool.globalInstance().start(task)  # type: ignore[union-attr]
    return task


def pending() -> int:
    """Tasks started and not yet delivered (tests wait for 0)."""
    return len(_alive)
