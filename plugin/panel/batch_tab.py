"""The Batch tab: a whole folder through the worker, with progress, pause and resume.

A thin view over :mod:`plugin.batch` (the same engine as ``lowlight batch``): the tab
collects the options, shows what a run would do before it starts (how many photos, how
many already done, why the output folder is refused), runs :class:`BatchRunner` in a
:class:`QThread` and shows its progress (count, current file, ETA), the failures (one
line each, with the reason) and a summary. Closing the panel mid-batch cancels it; the
journal in the output folder lets the next run continue where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PyQt6.QtCore import QSettings, Qt, QThread, QTimer, QUrl, pyqtSignal
from PyQt6.QtGui import QDesktopServices
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from lowlight.progress import format_duration
from plugin.batch import (
    DEFAULT_PATTERN,
    BatchError,
    BatchOptions,
    BatchPlan,
    BatchProgress,
    BatchRunner,
    BatchSummary,
    check_pattern,
    output_name,
    plan,
)
from plugin.panel.wording import sentence

#: (label, ``plugin.batch.FORMATS`` key) for the format box.
FORMAT_CHOICES = [("Same as input", "same"), ("JPEG", "jpeg"), ("PNG", "png"),
                  ("TIFF", "tiff"), ("WebP", "webp"), ("BMP", "bmp")]


class SignedSpinBox(QSpinBox):
    """A spin box that shows the sign of positive values: ``+40``, ``0``, ``-25``."""

    def textFromValue(self, v: int) -> str:
        return f"{v:+d}" if v else "0"


class BatchThread(QThread):
    """Runs one :class:`BatchRunner` (its progress and outcome come back as signals)."""

    progressed = pyqtSignal(object)  # BatchProgress
    completed = pyqtSignal(object)  # BatchSummary
    failed = pyqtSignal(str)

    def __init__(self, options: BatchOptions, batch_plan: BatchPlan, start_args: list[str],
                 runtime_dir: Path | None) -> None:
        super().__init__()
        self.plan = batch_plan
        self.runner = BatchRunner(options, progress=self.progressed.emit,
                                  start_args=start_args, runtime_dir=runtime_dir)

    def run(self) -> None:
        try:
            summary = self.runner.run(self.plan)
        except BatchError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # shown, never a silent dead thread
            self.failed.emit(f"the batch stopped: {type(exc).__name__}: {exc}")
        else:
            self.completed.emit(summary)


class BatchTab(QWidget):
    """Input/output folders, strength or Auto, brightness, format, name pattern;
    Start/Pause/Cancel.

    Signals:
        running_changed(bool): a batch started or ended.
    """

    running_changed = pyqtSignal(bool)

    def __init__(self, settings: QSettings, start_args: list[str] | None = None,
                 runtime_dir: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.start_args = list(start_args or [])
        self.runtime_dir = runtime_dir
        self.batch_thread: BatchThread | None = None
        self.summary: BatchSummary | None = None
        self._plan: BatchPlan | None = None
        self._build()
        self._restore()
        self._replan_timer = QTimer(self)
        self._replan_timer.setSingleShot(True)
        self._replan_timer.setInterval(250)
        self._replan_timer.timeout.connect(self.replan)
        for signal in (self.input_edit.textChanged, self.output_edit.textChanged,
                       self.pattern_edit.textChanged):
            signal.connect(self._schedule_replan)
        for box in (self.recursive_box, self.allow_input_box, self.auto_box):
            box.toggled.connect(self._schedule_replan)
        self.format_box.currentIndexChanged.connect(self._schedule_replan)
        self.strength_slider.valueChanged.connect(self._schedule_replan)
        self.replan()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.input_edit = QLineEdit()
        self.input_edit.setPlaceholderText("Folder of dark photos")
        self.input_edit.setAccessibleName("Input folder")
        self.output_edit = QLineEdit()
        self.output_edit.setPlaceholderText("Folder for the enhanced photos")
        self.output_edit.setAccessibleName("Output folder")
        in_browse = QPushButton("Browse…")
        in_browse.clicked.connect(lambda: self._browse(self.input_edit, "Input folder"))
        out_browse = QPushButton("Browse…")
        out_browse.clicked.connect(lambda: self._browse(self.output_edit, "Output folder"))
        self.recursive_box = QCheckBox("Include sub-folders")
        self.allow_input_box = QCheckBox("Allow writing into the input folder")
        self.allow_input_box.setToolTip("Outputs never replace an input, and existing files "
                                        "are never overwritten")
        self.strength_slider = QSlider(Qt.Orientation.Horizontal)
        self.strength_slider.setRange(0, 100)
        self.strength_slider.setPageStep(10)
        self.strength_slider.setAccessibleName("Batch strength")
        self.strength_spin = QSpinBox()
        self.strength_spin.setRange(0, 100)
        self.strength_spin.setSuffix(" %")
        self.strength_slider.valueChanged.connect(self.strength_spin.setValue)
        self.strength_spin.valueChanged.connect(self.strength_slider.setValue)
        self.auto_box = QCheckBox("Auto")
        self.auto_box.setToolTip("Strength from each photo's exposure: full for dark photos, "
                                 "none for well-exposed ones")
        self.auto_box.toggled.connect(self._auto_toggled)
        self.brightness_slider = QSlider(Qt.Orientation.Horizontal)
        self.brightness_slider.setRange(-100, 100)
        self.brightness_slider.setSingleStep(5)
        self.brightness_slider.setPageStep(25)
        self.brightness_slider.setAccessibleName("Batch brightness")
        self.brightness_spin = SignedSpinBox()
        self.brightness_spin.setRange(-100, 100)
        self.brightness_spin.setSingleStep(5)
        self.brightness_spin.setAccessibleName("Batch brightness value")
        for w in (self.brightness_slider, self.brightness_spin):
            w.setToolTip("From each photo's automatic exposure (0): +50 is one stop brighter, "
                         "-50 one stop darker, +-100 two (unlike strength, it can lift)")
        self.brightness_slider.valueChanged.connect(self.brightness_spin.setValue)
        self.brightness_spin.valueChanged.connect(self.brightness_slider.setValue)
        self.format_box = QComboBox()
        for label, key in FORMAT_CHOICES:
            self.format_box.addItem(label, key)
        self.pattern_edit = QLineEdit(DEFAULT_PATTERN)
        self.pattern_edit.setToolTip("{name}: the photo's name, {ext}: its suffix, "
                                     "{strength}: the strength")
        self.example_label = QLabel()
        self.example_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        def row(*widgets: QWidget) -> QWidget:
            box = QWidget()
            lay = QHBoxLayout(box)
            lay.setContentsMargins(0, 0, 0, 0)
            for w in widgets:
                lay.addWidget(w, 1 if isinstance(w, QLineEdit | QSlider) else 0)
            return box

        form = QFormLayout()
        form.addRow("Input folder:", row(self.input_edit, in_browse))
        form.addRow("", self.recursive_box)
        form.addRow("Output folder:", row(self.output_edit, out_browse))
        form.addRow("", self.allow_input_box)
        form.addRow("Strength:", row(self.strength_slider, self.strength_spin, self.auto_box))
        form.addRow("Brightness:", row(self.brightness_slider, self.brightness_spin))
        form.addRow("Format:", self.format_box)
        form.addRow("File names:", row(self.pattern_edit, self.example_label))

        self.plan_label = QLabel()
        self.plan_label.setWordWrap(True)
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._pause_toggled)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button = QPushButton("Open output folder")
        self.open_button.clicked.connect(self._open_output)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.open_button)

        self.progress_bar = QProgressBar()
        self.progress_bar.setFormat("%v of %m")
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.current_label = QLabel(" ")
        self.eta_label = QLabel(" ")
        status = QHBoxLayout()
        status.addWidget(self.current_label, 1)
        status.addWidget(self.eta_label)
        self.failure_list = QListWidget()
        self.failure_list.setAccessibleName("Failures")
        self.failure_list.setAlternatingRowColors(True)
        self.failure_list.setWordWrap(True)
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.plan_label)
        lay.addLayout(buttons)
        lay.addWidget(self.progress_bar)
        lay.addLayout(status)
        lay.addWidget(QLabel("Not enhanced:"))
        lay.addWidget(self.failure_list, 1)
        lay.addWidget(self.summary_label)
        self._set_running(False)

    def _auto_toggled(self, on: bool) -> None:
        self.strength_slider.setEnabled(not on and not self.running)
        self.strength_spin.setEnabled(not on and not self.running)

    def _browse(self, edit: QLineEdit, title: str) -> None:
        start = edit.text() or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, title, start)
        if folder:
            edit.setText(folder)

    def _open_output(self) -> None:
        if self.output_edit.text():
            QDesktopServices.openUrl(QUrl.fromLocalFile(self.output_edit.text()))

    # ------------------------------------------------------------------ settings

    def _restore(self) -> None:
        s = self.settings
        self.input_edit.setText(str(s.value("batch/input", "")))
        self.output_edit.setText(str(s.value("batch/output", "")))
        self.recursive_box.setChecked(_bool(s.value("batch/recursive", False)))
        self.strength_slider.setValue(int(s.value("batch/strength", 100)))
        self.strength_spin.setValue(self.strength_slider.value())
        self.auto_box.setChecked(_bool(s.value("batch/auto", False)))
        self.brightness_slider.setValue(_int(s.value("batch/brightness", 0), -100, 100))
        self.brightness_spin.setValue(self.brightness_slider.value())
        index = self.format_box.findData(str(s.value("batch/format", "same")))
        self.format_box.setCurrentIndex(max(0, index))
        self.pattern_edit.setText(str(s.value("batch/pattern", DEFAULT_PATTERN)))

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("batch/input", self.input_edit.text())
        s.setValue("batch/output", self.output_edit.text())
        s.setValue("batch/recursive", self.recursive_box.isChecked())
        s.setValue("batch/strength", self.strength_slider.value())
        s.setValue("batch/auto", self.auto_box.isChecked())
        s.setValue("batch/brightness", self.brightness_slider.value())
        s.setValue("batch/format", self.format_box.currentData())
        s.setValue("batch/pattern", self.pattern_edit.text())

    # ------------------------------------------------------------------ options & plan

    def set_input_folder(self, folder: Path) -> None:
        self.input_edit.setText(str(folder))
        if not self.output_edit.text():
            self.output_edit.setText(str(folder.parent / f"{folder.name} enhanced"))

    def options(self) -> BatchOptions:
        return BatchOptions(
            input_dir=Path(self.input_edit.text().strip()).expanduser(),
            output_dir=Path(self.output_edit.text().strip()).expanduser(),
            recursive=self.recursive_box.isChecked(),
            strength="auto" if self.auto_box.isChecked()
            else self.strength_slider.value() / 100,
            output_format=str(self.format_box.currentData()),
            pattern=self.pattern_edit.text().strip(),
            allow_input_folder=self.allow_input_box.isChecked(),
            brightness=self.brightness_slider.value() / 100,
        )

    def _schedule_replan(self) -> None:
        if not self.running:
            self._replan_timer.start()

    def replan(self) -> BatchPlan | None:
        """Check the options and say what Start would do (enables Start when it can)."""
        self._replan_timer.stop()
        self._plan = None
        try:
            check_pattern(self.pattern_edit.text().strip())
            example = output_name(Path("IMG_0001.jpg"), self.options())
            self.example_label.setText(f"IMG_0001.jpg → {example}")
        except BatchError:
            self.example_label.setText("")
        if not self.input_edit.text().strip() or not self.output_edit.text().strip():
            self._say_plan("Choose a folder of photos and a folder for the results.", ok=False)
            return None
        try:
            self._plan = plan(self.options())
        except BatchError as exc:
            self._say_plan(sentence(str(exc)), ok=False)
            return None
        p = self._plan
        if p.total == 0:
            self._say_plan("No photos (.jpg, .png, .tif, .webp, .bmp) in the input folder"
                           + ("." if self.recursive_box.isChecked()
                              else "; include sub-folders?"), ok=False)
            return p
        parts = [f"{p.total} photo{'s' if p.total != 1 else ''}"]
        if p.done:
            parts.append(f"{len(p.done)} already done (skipped)")
        if p.existing:
            parts.append(f"{len(p.existing)} with an existing output (left alone)")
        if p.refused:
            parts.append(f"{len(p.refused)} that cannot be written (see below)")
        parts.append(f"{len(p.todo)} to enhance")
        self._say_plan("; ".join(parts) + ".", ok=bool(p.todo))
        if p.todo and len(p.failed_before) == len(p.todo):
            self.start_button.setText("Retry Failed")
        elif p.resumed and (p.done or p.unfinished):
            self.start_button.setText("Resume")
        else:
            self.start_button.setText("Start")
        return p

    def _say_plan(self, text: str, *, ok: bool) -> None:
        self.plan_label.setText(text)
        self.start_button.setEnabled(ok and not self.running)

    # ------------------------------------------------------------------ running

    @property
    def running(self) -> bool:
        return self.batch_thread is not None

    def start(self) -> bool:
        """Start (or resume) the batch; ``False`` when the options do not allow it."""
        if self.running:
            return False
        the_plan = self.replan()
        if the_plan is None or not the_plan.todo:
            return False
        self.save_settings()
        self.summary = None
        self.failure_list.clear()
        for failure in the_plan.refused:
            self.failure_list.addItem(str(failure))
        self.summary_label.setText("")
        self.progress_bar.setRange(0, the_plan.total)
        self.progress_bar.setValue(the_plan.total - len(the_plan.todo) - len(the_plan.refused))
        thread = BatchThread(self.options(), the_plan, self.start_args, self.runtime_dir)
        thread.progressed.connect(self._on_progress)
        thread.completed.connect(self._on_completed)
        thread.failed.connect(self._on_failed)
        thread.finished.connect(self._on_thread_finished)
        self.batch_thread = thread
        self._set_running(True)
        self.current_label.setText("Starting…")
        thread.start()
        return True

    def pause(self, on: bool = True) -> None:
        self.pause_button.setChecked(on)

    def _pause_toggled(self, on: bool) -> None:
        if self.batch_thread is None:
            return
        if on:
            self.batch_thread.runner.pause()
            self.pause_button.setText("Continue")
            self.eta_label.setText("pausing after this photo…")
        else:
            self.batch_thread.runner.resume()
            self.pause_button.setText("Pause")

    def cancel(self) -> None:
        """Stop now; the photo in flight is redone by the next run."""
        if self.batch_thread is not None:
            self.batch_thread.runner.cancel()
            self.current_label.setText("Cancelling…")

    def shutdown(self, wait_ms: int = 10000) -> None:
        """Cancel a running batch and wait for it (the journal stays consistent)."""
        if self.batch_thread is not None:
            self.batch_thread.runner.cancel()
            self.batch_thread.wait(wait_ms)
        self.save_settings()

    def _set_running(self, on: bool) -> None:
        for w in (self.input_edit, self.output_edit, self.recursive_box, self.allow_input_box,
                  self.format_box, self.pattern_edit, self.auto_box, self.brightness_slider,
                  self.brightness_spin):
            w.setEnabled(not on)
        self.strength_slider.setEnabled(not on and not self.auto_box.isChecked())
        self.strength_spin.setEnabled(not on and not self.auto_box.isChecked())
        self.start_button.setEnabled(not on and self._plan is not None and bool(self._plan.todo))
        self.pause_button.setEnabled(on)
        self.cancel_button.setEnabled(on)
        if not on:
            self.pause_button.blockSignals(True)
            self.pause_button.setChecked(False)
            self.pause_button.setText("Pause")
            self.pause_button.blockSignals(False)
        self.running_changed.emit(on)

    def _on_progress(self, p: BatchProgress) -> None:
        self.progress_bar.setRange(0, max(1, p.total))
        self.progress_bar.setValue(p.done)
        if p.paused:
            self.current_label.setText(f"Paused after {p.done} of {p.total}")
            self.eta_label.setText("press Continue to go on")
        elif p.current is not None:
            tile = f" (part {p.tile[0]} of {p.tile[1]})" if p.tile else ""
            self.current_label.setText(f"{p.done + 1} of {p.total}: {p.current.name}{tile}")
            self.eta_label.setText(f"about {format_duration(p.eta_s)} left"
                                   if p.eta_s is not None else "")
        known = self.failure_list.count()
        for failure in p.failures[known:]:
            self.failure_list.addItem(str(failure))

    def _on_completed(self, summary: BatchSummary) -> None:
        self.summary = summary
        self.failure_list.clear()
        for failure in summary.failures:
            self.failure_list.addItem(str(failure))
        text = sentence(f"{summary.headline()}, in {format_duration(summary.elapsed_s)}")
        if summary.retried:
            text += " The worker stopped during the batch and was restarted."
        for note in summary.notices:
            text += f" Note: {note}"
        self.summary_label.setText(text)
        if summary.cancelled or summary.stopped:
            self.current_label.setText("Stopped; press Resume to continue")
        else:
            self.current_label.setText("Done" if summary.complete else
                                       f"Done; {len(summary.failures)} not enhanced")
        self.eta_label.setText("")

    def _on_failed(self, message: str) -> None:
        self.summary_label.setText(sentence(message))
        self.current_label.setText("Not started")

    def _on_thread_finished(self) -> None:
        thread = self.batch_thread
        self.batch_thread = None
        if thread is not None:
            thread.deleteLater()
        self._set_running(False)
        self.replan()


def _bool(value: Any) -> bool:
    return value in (True, "true", "1", 1)


def _int(value: Any, low: int, high: int, default: int = 0) -> int:
    """A setting as an int in [low, high] (``default`` when it is not a number)."""
    try:
        return min(high, max(low, int(value)))
    except (TypeError, ValueError):
        return default
