"""The panel's window: a Photo tab (open, compare, slide, save) and a Batch tab.

Photo tab, in the order a photographer meets it:

* **open** with File > Open (Ctrl+O), by dropping files on the window, from the command
  line, or File > Open Recent; several files can be stepped through (Page Up/Down).
  A dropped *folder* goes to the Batch tab. Files are read off the GUI thread.
* the photo is **enhanced** in the background worker as soon as it is open (Enhance,
  Ctrl+E, runs it again; Cancel, Esc, stops it); the window never waits for it.
* the **strength** slider (0-100 %) and **Auto** (strength from the photo's exposure,
  :func:`hybridnet.contract.auto_strength`) only re-blend the cached result for the
  screen (:mod:`plugin.panel.preview`): no new request, the slider follows the mouse.
* the **brightness** slider (-100..+100, i.e. ``b`` = -1..1 of
  :func:`hybridnet.contract.check_brightness`) changes what the network sees, so it
  needs a new enhancement: one request when the slider is let go (keyboard and wheel
  changes wait :data:`BRIGHTNESS_DELAY_MS` for the last one), superseding a request still
  running. The result keeps the brightness it was computed with
  (:attr:`Document.brightness`): the view, Save and the status bar always tell that one,
  even while the slider already shows the next. Reset goes back to 0.
* the **before/after** view (:mod:`plugin.panel.viewer`): split divider or toggle (Y /
  backslash), zoom and pan, Fit (Ctrl+0) and 100 % (Ctrl+1), one view for both.
* **Save As** (Ctrl+Shift+S) is the default way to save: it proposes ``NAME_enhanced``
  beside the photo; the suffix picks the format; :func:`hybridnet.imageio.write_image`
  with the photo's metadata keeps format, bit depth, EXIF and ICC profile. Replacing an
  existing file, and above all the original, asks first. **Save** (Ctrl+S) writes again to
  the file chosen with Save As, or opens Save As.

The worker's state is always in the status bar (:class:`WorkerStatusWidget`): starting,
ready on GPU/CPU, busy with progress, or an error with the remedy and a Restart button.
Errors of one action (a file that cannot be read, a failed save) appear in a banner
above the photo, never in a dialog that blocks the window.

Settings (QSettings): window geometry, last folders, recent files, strength, brightness,
view mode, theme, and the Batch tab's options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from numpy.typing import NDArray
from PyQt6.QtCore import QSettings, QSize, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QIcon,
    QKeySequence,
    QPainter,
    QPaintEvent,
    QPalette,
)
from PyQt6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QStyle,
    QTabWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hybridnet.imageio import SUPPORTED_SUFFIXES, LoadedImage
from plugin.panel import theme
from plugin.panel.batch_tab import BatchTab
from plugin.panel.preview import PreviewSource
from plugin.panel.tasks import run_task
from plugin.panel.viewer import CompareView
from plugin.panel.wording import sentences
from plugin.panel.worker_link import WorkerLink, WorkerState, WorkerStatus

APP_NAME: Final = "Enhance Low Light"
MAX_RECENT: Final = 10
#: Keyboard and wheel changes of the brightness slider are sent this long after the last.
BRIGHTNESS_DELAY_MS: Final = 300
_SAVE_FILTERS: Final = {
    ".jpg": "JPEG (*.jpg *.jpeg)",
    ".png": "PNG (*.png)",
    ".tif": "TIFF (*.tif *.tiff)",
    ".webp": "WebP (*.webp)",
    ".bmp": "BMP (*.bmp)",
}


@dataclass
class Document:
    """The open photo and what was made of it.

    Attributes:
        path: the file read.
        loaded: its pixels and metadata (full resolution, never modified).
        preview: the screen layers (:class:`PreviewSource`).
        enhanced: the worker's result at full strength, or ``None``.
        brightness: the brightness ``enhanced`` was computed with (-1..1).
        job: the worker job in flight for this photo.
        job_brightness: the brightness asked for by ``job``.
        saved_to: the file the last Save As chose (Save writes there again).
        seconds: how long the worker took for ``enhanced``.
    """

    path: Path
    loaded: LoadedImage
    preview: PreviewSource
    enhanced: NDArray[Any] | None = None
    brightness: float = 0.0
    job: int | None = None
    job_brightness: float = 0.0
    saved_to: Path | None = None
    seconds: float | None = None


def brightness_text(brightness: float) -> str:
    """The brightness as the slider shows it: ``+40``, ``0``, ``-25`` (``b`` × 100)."""
    value = round(brightness * 100)
    return f"{value:+d}" if value else "0"


class StatusDot(QWidget):
    """A small coloured disc: green ready, blue busy, amber starting/notice, red error."""

    COLOURS: Final = {
        WorkerState.READY: QColor(46, 160, 67), WorkerState.BUSY: QColor(56, 132, 230),
        WorkerState.STARTING: QColor(224, 160, 30), WorkerState.ERROR: QColor(215, 58, 73),
        WorkerState.STOPPED: QColor(150, 150, 150),
    }

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.colour = self.COLOURS[WorkerState.STOPPED]
        self.setFixedSize(QSize(12, 12))

    def set_colour(self, colour: QColor) -> None:
        self.colour = colour
        self.update()

    def paintEvent(self, event: QPaintEvent | None) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(self.palette().color(QPalette.ColorRole.Shadow))
        p.setBrush(self.colour)
        p.drawEllipse(1, 1, self.width() - 2, self.height() - 2)
        p.end()


class ElidedLabel(QLabel):
    """A one-line label that shortens its text with "…" instead of widening the window."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(60)

    def paintEvent(self, event: QPaintEvent | None) -> None:
        p = QPainter(self)
        p.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight,
                                             self.width())
        p.drawText(self.rect(), int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
                   text)
        p.end()


class WorkerStatusWidget(QWidget):
    """The worker's state for the status bar: dot, title, remedy, Restart."""

    restart_requested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.dot = StatusDot()
        self.title = QLabel("Not connected")
        self.remedy = ElidedLabel()  # the whole sentence is in the tooltip
        self.restart_button = QToolButton()
        self.restart_button.setText("Restart")
        self.restart_button.setToolTip("Start the worker again (Ctrl+Shift+R)")
        self.restart_button.clicked.connect(self.restart_requested)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.addWidget(self.dot)
        lay.addWidget(self.title)
        lay.addWidget(self.remedy, 1)
        lay.addWidget(self.restart_button)
        self.show_status(WorkerStatus(WorkerState.STOPPED, "Not connected"))

    def show_status(self, status: WorkerStatus) -> None:
        colour = StatusDot.COLOURS[status.state]
        if status.state is WorkerState.READY and status.remedy:
            colour = StatusDot.COLOURS[WorkerState.STARTING]  # ready, with a notice
        self.dot.set_colour(colour)
        self.title.setText(f"<b>{status.title}</b>")
        self.remedy.setText(status.remedy)
        self.remedy.setToolTip(status.remedy)
        self.setToolTip(f"{status.title}. {status.remedy}".strip())
        self.restart_button.setVisible(status.state in (WorkerState.ERROR, WorkerState.STOPPED))


class Banner(QWidget):
    """A dismissable message above the photo (errors of one action, notices)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAutoFillBackground(True)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 6, 6)
        lay.addWidget(self.label, 1)
        lay.addWidget(close)
        self.kind = ""
        self.hide()

    def show_message(self, text: str, kind: str = "error") -> None:
        self.kind = kind
        pal = self.palette()
        base = QColor(215, 58, 73) if kind == "error" else pal.color(QPalette.ColorRole.Highlight)
        window = pal.color(QPalette.ColorRole.Window)
        mix = QColor((base.red() + 3 * window.red()) // 4, (base.green() + 3 * window.green())
                     // 4, (base.blue() + 3 * window.blue()) // 4)
        pal.setColor(QPalette.ColorRole.Window, mix)
        self.setPalette(pal)
        self.label.setText(text)
        self.show()


class MainWindow(QMainWindow):
    """The panel window.

    Args:
        settings: where preferences live (tests pass a private INI file).
        start_args: the worker's arguments should the panel start one.
        runtime_dir: the worker's folder (tests; default: the user's).
        link: an existing :class:`WorkerLink` (tests); default: a new one, started.
    """

    def __init__(
        self,
        settings: QSettings,
        start_args: list[str] | None = None,
        runtime_dir: Path | None = None,
        link: WorkerLink | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.doc: Document | None = None
        self.files: list[Path] = []
        self.file_index = -1
        self._loading: Path | None = None
        self._saving = False
        self.last_saved: Path | None = None
        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self.link = link or WorkerLink(start_args or [], runtime_dir)
        self.link.status_changed.connect(self._on_worker_status)
        self.link.progress.connect(self._on_progress)
        self.link.result_ready.connect(self._on_result)
        self.link.job_failed.connect(self._on_job_failed)
        self.link.job_cancelled.connect(self._on_job_cancelled)
        self._build_photo_page()
        self.batch = BatchTab(settings, start_args, runtime_dir)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.photo_page, "Photo")
        self.tabs.addTab(self.batch, "Batch")
        self.setCentralWidget(self.tabs)
        self._build_actions()
        self._build_status_bar()
        self._restore_settings()
        self._update_actions()
        if link is None:
            self.link.start()
        else:
            self._on_worker_status(self.link.status)

    # ------------------------------------------------------------------ building

    def _build_photo_page(self) -> None:
        self.photo_page = QWidget()
        self.banner = Banner()
        self.viewer = CompareView()
        self.viewer.zoom_changed.connect(self._on_zoom)
        self.info_label = ElidedLabel()  # shrinks before the controls do
        self.strength_slider = QSlider(Qt.Orientation.Horizontal)
        self.strength_slider.setRange(0, 100)
        self.strength_slider.setSingleStep(1)
        self.strength_slider.setPageStep(10)
        self.strength_slider.setMinimumWidth(120)
        self.strength_slider.setAccessibleName("Strength")
        self.strength_slider.setToolTip("How much of the enhancement to apply; moving it "
                                        "re-blends instantly, without running the network")
        self.strength_slider.valueChanged.connect(self._on_strength)
        self.strength_value = QLabel("100 %")
        self.strength_value.setMinimumWidth(
            self.strength_value.fontMetrics().horizontalAdvance("100 %") + 6)
        self.auto_button = QPushButton("Auto")
        self.auto_button.setToolTip("Strength from the photo's exposure: full for dark "
                                    "photos, none for well-exposed ones (Ctrl+Shift+A)")
        self.auto_button.clicked.connect(self.auto_strength)
        self.brightness_slider = QSlider(Qt.Orientation.Horizontal)
        self.brightness_slider.setRange(-100, 100)
        self.brightness_slider.setSingleStep(5)
        self.brightness_slider.setPageStep(25)
        self.brightness_slider.setMinimumWidth(100)
        self.brightness_slider.setAccessibleName("Brightness")
        self.brightness_slider.setToolTip(
            "From the automatic exposure (0, estimated from the photo): +50 is one stop "
            "brighter, -50 one stop darker, +-100 two. Unlike strength it runs the network "
            "again, once you let go")
        self.brightness_slider.valueChanged.connect(self._on_brightness)
        self.brightness_slider.sliderReleased.connect(self._apply_brightness)
        self.brightness_value = QLabel("0")
        self.brightness_value.setMinimumWidth(
            self.brightness_value.fontMetrics().horizontalAdvance("+100") + 6)
        self.brightness_reset = QToolButton()
        self.brightness_reset.setText("Reset")  # shown when the style has no icon
        style = self.style()
        if style is not None:
            self.brightness_reset.setIcon(
                style.standardIcon(QStyle.StandardPixmap.SP_DialogResetButton))
        self.brightness_reset.setAutoRaise(True)
        self.brightness_reset.setAccessibleName("Reset brightness")
        self.brightness_reset.setToolTip("Brightness back to 0: the automatic exposure")
        self.brightness_reset.clicked.connect(self.reset_brightness)
        self._brightness_timer = QTimer(self)
        self._brightness_timer.setSingleShot(True)
        self._brightness_timer.setInterval(BRIGHTNESS_DELAY_MS)
        self._brightness_timer.timeout.connect(self._apply_brightness)
        self.zoom_label = QLabel("")
        self.zoom_label.setMinimumWidth(self.zoom_label.fontMetrics().horizontalAdvance(
            "3200 %") + 6)
        # two rows under the photo: what it is and how it is viewed, then the adjustments
        view_row = QHBoxLayout()
        view_row.addWidget(self.info_label, 1)
        self.split_button = QToolButton()
        self.original_button = QToolButton()
        self.fit_button = QToolButton()
        self.actual_button = QToolButton()
        for b in (self.split_button, self.original_button, self.fit_button, self.actual_button):
            view_row.addWidget(b)
        view_row.addWidget(self.zoom_label)
        adjust_row = QHBoxLayout()
        adjust_row.addWidget(QLabel("Strength"))
        adjust_row.addWidget(self.strength_slider, 1)
        adjust_row.addWidget(self.strength_value)
        adjust_row.addWidget(self.auto_button)
        adjust_row.addSpacing(12)
        adjust_row.addWidget(QLabel("Brightness"))
        adjust_row.addWidget(self.brightness_slider, 1)
        adjust_row.addWidget(self.brightness_value)
        adjust_row.addWidget(self.brightness_reset)
        controls = QVBoxLayout()
        controls.setContentsMargins(8, 4, 8, 6)
        controls.setSpacing(2)
        controls.addLayout(view_row)
        controls.addLayout(adjust_row)
        lay = QVBoxLayout(self.photo_page)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.banner)
        lay.addWidget(self.viewer, 1)
        lay.addLayout(controls)

    def _action(self, text: str, slot: Any, shortcut: Any = None, *, tip: str = "",
                checkable: bool = False, icon: QStyle.StandardPixmap | None = None,
                local: bool = False) -> QAction:
        act = QAction(text, self)
        if icon is not None:
            style = self.style()
            if style is not None:
                act.setIcon(style.standardIcon(icon))
        if shortcut is not None:
            seqs = shortcut if isinstance(shortcut, list) else [shortcut]
            act.setShortcuts([QKeySequence(s) for s in seqs])
        if tip:
            act.setToolTip(tip)
            act.setStatusTip(tip)
        act.setCheckable(checkable)
        (act.toggled if checkable else act.triggered).connect(slot)
        if local:  # photo-tab only: not while typing in the Batch tab
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.photo_page.addAction(act)
        return act

    def _build_actions(self) -> None:
        SK = QKeySequence.StandardKey
        SP = QStyle.StandardPixmap
        self.open_action = self._action("&Open…", self.open_dialog, SK.Open,
                                        tip="Open a photo (Ctrl+O)", icon=SP.SP_DialogOpenButton)
        self.save_action = self._action("&Save", self.save, SK.Save,
                                        tip="Save the enhanced photo (Ctrl+S)",
                                        icon=SP.SP_DialogSaveButton)
        self.save_as_action = self._action("Save &As…", lambda: self.save_as(), SK.SaveAs,
                                           tip="Save the enhanced photo under a new name "
                                           "(Ctrl+Shift+S)")
        self.quit_action = self._action("&Quit", self.close, SK.Quit)
        self.enhance_action = self._action("&Enhance", self.enhance, ["Ctrl+E", "Ctrl+Return"],
                                           tip="Enhance the photo again (Ctrl+E)",
                                           icon=SP.SP_MediaPlay)
        self.cancel_action = self._action("&Cancel", self.cancel, "Esc",
                                          tip="Stop the enhancement (Esc)",
                                          icon=SP.SP_MediaStop)
        self.auto_action = self._action("&Auto Strength", self.auto_strength, "Ctrl+Shift+A",
                                        local=True)
        self.split_action = self._action("&Split Before/After", self.viewer.set_split, "Y",
                                         tip="Split view with a divider (Y); off: toggle",
                                         checkable=True, local=True)
        self.original_action = self._action("Show &Original", self.viewer.set_show_before,
                                            "\\", tip="Show the original photo (\\)",
                                            checkable=True, local=True)
        self.fit_action = self._action("&Fit", self.viewer.fit, "Ctrl+0",
                                       tip="Fit the photo in the window (Ctrl+0)", local=True)
        self.actual_action = self._action("&100 %", lambda: self.viewer.actual_size(), "Ctrl+1",
                                          tip="One photo pixel per screen pixel (Ctrl+1)",
                                          local=True)
        self.zoom_in_action = self._action("Zoom &In", self.viewer.zoom_in,
                                           [SK.ZoomIn, "Ctrl+="], local=True)
        self.zoom_out_action = self._action("Zoom O&ut", self.viewer.zoom_out, SK.ZoomOut,
                                            local=True)
        self.next_action = self._action("&Next Photo", lambda: self.step_file(1), "PgDown",
                                        local=True)
        self.prev_action = self._action("&Previous Photo", lambda: self.step_file(-1), "PgUp",
                                        local=True)
        self.restart_action = self._action("&Restart Worker", self.link.restart,
                                           "Ctrl+Shift+R",
                                           tip="Start the background worker again")
        for act, short in ((self.split_action, "Split"), (self.original_action, "Original"),
                           (self.fit_action, "Fit"), (self.actual_action, "100 %")):
            act.setIconText(short)  # what the tool buttons under the photo show
        self.split_button.setDefaultAction(self.split_action)
        self.original_button.setDefaultAction(self.original_action)
        self.fit_button.setDefaultAction(self.fit_action)
        self.actual_button.setDefaultAction(self.actual_action)

        bar = self.menuBar()
        assert bar is not None
        file_menu = bar.addMenu("&File")
        assert file_menu is not None
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        assert self.recent_menu is not None
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addAction(self.save_action)
        file_menu.addAction(self.save_as_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        enhance_menu = bar.addMenu("&Enhance")
        assert enhance_menu is not None
        for act in (self.enhance_action, self.cancel_action, self.auto_action):
            enhance_menu.addAction(act)
        self.enhance_on_open_action = QAction("Enhance When &Opened", self)
        self.enhance_on_open_action.setCheckable(True)
        enhance_menu.addAction(self.enhance_on_open_action)
        view_menu = bar.addMenu("&View")
        assert view_menu is not None
        for maybe in (self.split_action, self.original_action, None, self.fit_action,
                      self.actual_action, self.zoom_in_action, self.zoom_out_action, None,
                      self.next_action, self.prev_action, None):
            if maybe is None:
                view_menu.addSeparator()
            else:
                view_menu.addAction(maybe)
        theme_menu = view_menu.addMenu("&Theme")
        assert theme_menu is not None
        self.theme_group = QActionGroup(self)
        for name in theme.THEMES:
            theme_action = QAction(name.capitalize(), self)
            theme_action.setCheckable(True)
            theme_action.setData(name)
            theme_action.triggered.connect(lambda _=False, n=name: self.set_theme(n))
            self.theme_group.addAction(theme_action)
            theme_menu.addAction(theme_action)
        worker_menu = bar.addMenu("&Worker")
        assert worker_menu is not None
        worker_menu.addAction(self.restart_action)

        tools = QToolBar("Main")
        tools.setObjectName("mainToolbar")
        tools.setMovable(False)
        tools.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for maybe in (self.open_action, self.save_as_action, None, self.enhance_action,
                      self.cancel_action):
            if maybe is None:
                tools.addSeparator()
            else:
                tools.addAction(maybe)
        self.addToolBar(tools)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        assert bar is not None
        self.worker_status = WorkerStatusWidget()
        self.worker_status.restart_requested.connect(self.link.restart)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.cancel_button = QToolButton()
        self.cancel_button.setDefaultAction(self.cancel_action)
        self.cancel_button.hide()
        # permanent widgets only: a temporary showMessage() would hide the worker's state
        self.message_label = QLabel()
        self._message_timer = QTimer(self)
        self._message_timer.setSingleShot(True)
        self._message_timer.timeout.connect(lambda: self.message_label.setText(""))
        bar.addPermanentWidget(self.worker_status, 1)
        bar.addPermanentWidget(self.message_label)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)

    # ------------------------------------------------------------------ settings

    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1200, 800)
        state = s.value("window/state")
        if state is not None:
            self.restoreState(state)
        self.strength_slider.setValue(int(s.value("strength", 100)))
        self._on_strength(self.strength_slider.value())
        self.brightness_slider.setValue(_int(s.value("brightness", 0), -100, 100))
        self._brightness_timer.stop()  # nothing open yet: the next photo gets this value
        self._show_brightness()
        self.split_action.setChecked(_bool(s.value("view/split", True)))
        self.viewer.set_split(self.split_action.isChecked())
        self.enhance_on_open_action.setChecked(_bool(s.value("enhance_on_open", True)))
        name = str(s.value("theme", "system"))
        for act in self.theme_group.actions():
            act.setChecked(act.data() == name)

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("strength", self.strength_slider.value())
        s.setValue("brightness", self.brightness_slider.value())
        s.setValue("view/split", self.split_action.isChecked())
        s.setValue("enhance_on_open", self.enhance_on_open_action.isChecked())
        self.batch.save_settings()
        s.sync()

    def set_theme(self, name: str) -> None:
        """Switch to the ``system``, ``light`` or ``dark`` palette (remembered)."""
        app = QApplication.instance()
        if isinstance(app, QApplication):
            theme.apply(app, name)
        self.settings.setValue("theme", name)
        for act in self.theme_group.actions():
            act.setChecked(act.data() == name)
        self.viewer.update()

    def recent_files(self) -> list[Path]:
        value = self.settings.value("recent", [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [Path(v) for v in items if v]

    def _add_recent(self, path: Path) -> None:
        items = [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent", [str(p) for p in [path, *items][:MAX_RECENT]])

    def _fill_recent(self) -> None:
        menu = self.recent_menu
        assert menu is not None
        menu.clear()
        recent = [p for p in self.recent_files() if p.exists()]
        if not recent:
            empty = menu.addAction("No recent photos")
            if empty is not None:
                empty.setEnabled(False)
            return
        for i, path in enumerate(recent):
            item = menu.addAction(f"&{(i + 1) % 10} {path.name}")
            if item is not None:
                item.setToolTip(str(path))
                item.triggered.connect(lambda _=False, p=path: self.open_paths([p]))

    # ------------------------------------------------------------------ opening

    def open_dialog(self) -> None:
        start = str(self.settings.value("paths/open", str(Path.home())))
        patterns = " ".join(f"*{s}" for s in sorted(SUPPORTED_SUFFIXES))
        names, _ = QFileDialog.getOpenFileNames(
            self, "Open photos", start, f"Photos ({patterns});;All files (*)")
        if names:
            self.open_paths([Path(n) for n in names])

    def open_paths(self, paths: list[Path]) -> None:
        """Open photos (the first is shown, Page Up/Down steps); a folder goes to Batch."""
        folders = [p for p in paths if p.is_dir()]
        files = [p for p in paths if not p.is_dir()]
        if folders:
            self.batch.set_input_folder(folders[0])
            if not files:
                self.tabs.setCurrentWidget(self.batch)
        if files:
            self.files = files
            self.file_index = 0
            self.tabs.setCurrentWidget(self.photo_page)
            self.load(files[0])

    def step_file(self, delta: int) -> None:
        if len(self.files) > 1:
            self.file_index = (self.file_index + delta) % len(self.files)
            self.load(self.files[self.file_index])

    def load(self, path: Path) -> None:
        """Read ``path`` in the background; it replaces the current photo when read."""
        from hybridnet.imageio import read_image

        self._loading = path
        self._status_message(f"Opening {path.name}…")

        def work() -> tuple[LoadedImage, PreviewSource]:
            loaded = read_image(path)
            return loaded, PreviewSource(loaded.pixels)

        run_task(work, lambda r: self._loaded(path, *r), lambda e: self._load_failed(path, e))

    def _loaded(self, path: Path, loaded: LoadedImage, preview: PreviewSource) -> None:
        if self._loading != path:
            return  # another photo was asked for meanwhile
        self._loading = None
        if self.doc is not None and self.doc.job is not None:
            self.link.cancel()
        self.doc = Document(path, loaded, preview)
        self.viewer.set_source(preview)
        self.viewer.setFocus()
        self.banner.hide()
        meta = loaded.metadata
        h, w = loaded.pixels.shape[:2]
        bits = {"uint8": 8, "uint16": 16, "float32": 32}.get(str(loaded.pixels.dtype), 8)
        colour = f" · {meta.colorspace}" if meta.colorspace != "sRGB" else ""
        self.info_label.setText(f"{path.name} · {w}×{h} · {bits}-bit {meta.format}{colour}")
        self.info_label.setToolTip(str(path))
        count = f" ({self.file_index + 1} of {len(self.files)})" if len(self.files) > 1 else ""
        self.setWindowTitle(f"{path.name}{count} — {APP_NAME}")
        self._add_recent(path)
        self.settings.setValue("paths/open", str(path.parent))
        self._status_message(f"Opened {path.name}", 3000)
        if loaded.notes:
            self.banner.show_message(sentences(loaded.notes), "info")
        self._update_actions()
        if self.enhance_on_open_action.isChecked():
            self.enhance()

    def _load_failed(self, path: Path, exc: BaseException) -> None:
        if self._loading == path:
            self._loading = None
        self._status_message("")
        self.banner.show_message(f"Cannot open {path.name}: {_message(exc, path)}")

    # ------------------------------------------------------------------ enhancing

    def enhance(self) -> None:
        """Send the photo to the worker at the slider's brightness (and full strength: the
        strength slider blends locally); a request still running is superseded."""
        doc = self.doc
        if doc is None:
            return
        self._brightness_timer.stop()
        brightness = self.brightness
        doc.job = self.link.enhance(doc.loaded.pixels, brightness)
        doc.job_brightness = brightness
        self.progress.setRange(0, 0)  # busy until the first tile report
        self.progress.setFormat(_enhancing(brightness))
        self.progress.show()
        self.cancel_button.show()
        self._show_brightness()
        self._update_actions()

    def cancel(self) -> None:
        """Stop the photo's enhancement (a batch has its own Cancel button)."""
        self._brightness_timer.stop()
        if self.doc is not None and self.doc.job is not None:
            self.link.cancel()

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        job_brightness = self.doc.job_brightness if self.doc is not None else 0.0
        self.progress.setFormat(_enhancing(job_brightness, " %p %"))

    def _on_result(self, job: int, result: NDArray[Any], seconds: float) -> None:
        doc = self.doc
        if doc is None or doc.job != job:
            return
        doc.job = None
        doc.enhanced = result
        doc.brightness = doc.job_brightness
        doc.seconds = seconds
        doc.preview.set_enhanced(result)
        self.viewer.refresh()
        self._end_progress()
        notes = self.link.notices
        if notes:
            self.banner.show_message(" ".join(notes), "info")
        at = f" at brightness {brightness_text(doc.brightness)}" if doc.brightness else ""
        self._status_message(f"Enhanced{at} in {seconds:.1f} s", 5000)
        self._show_brightness()
        self._update_actions()

    def _on_job_failed(self, job: int, code: str, message: str) -> None:
        if self.doc is not None and self.doc.job == job:
            self.doc.job = None
            self._end_progress()
            self.banner.show_message(f"Not enhanced: {message}{self._still_showing()}")
            self._show_brightness()
            self._update_actions()

    def _on_job_cancelled(self, job: int) -> None:
        if self.doc is not None and self.doc.job == job:
            self.doc.job = None
            self._end_progress()
            self._status_message(f"Enhancement cancelled{self._still_showing()}", 4000)
            self._show_brightness()
            self._update_actions()

    def _status_message(self, text: str, ms: int = 0) -> None:
        """A short note beside the worker's state (cleared after ``ms`` when given)."""
        self.message_label.setText(text)
        self._message_timer.stop()
        if ms:
            self._message_timer.start(ms)

    def _end_progress(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()

    def _on_worker_status(self, status: WorkerStatus) -> None:
        self.worker_status.show_status(status)

    # ------------------------------------------------------------------ strength & view

    @property
    def strength(self) -> float:
        return self.strength_slider.value() / 100

    def _on_strength(self, value: int) -> None:
        self.strength_value.setText(f"{value} %")
        self.viewer.set_strength(value / 100)

    @property
    def brightness(self) -> float:
        """The slider's brightness, -1..1 (what the next enhancement asks for)."""
        return self.brightness_slider.value() / 100

    def _on_brightness(self, value: int) -> None:
        """A new slider value: sent when let go; keyboard and wheel after a short pause."""
        self._show_brightness()
        if self.brightness_slider.isSliderDown():
            self._brightness_timer.stop()  # sliderReleased sends it
        else:
            self._brightness_timer.start()

    def _apply_brightness(self) -> None:
        """Enhance the photo again when the slider asks for another brightness than the
        result's (or than the request running)."""
        self._brightness_timer.stop()
        doc = self.doc
        if doc is None:
            return  # the next photo is enhanced at this brightness
        wanted = self.brightness
        if doc.job is not None:
            if doc.job_brightness == wanted:
                return
        elif doc.enhanced is None or doc.brightness == wanted:
            return  # never enhanced (Enhance does it), or already this brightness
        self.enhance()

    def reset_brightness(self) -> None:
        """Brightness back to 0 (re-enhances the photo when its result is another)."""
        self.brightness_slider.setValue(0)
        self._apply_brightness()

    def _show_brightness(self) -> None:
        """The slider's value, and in the tooltip which brightness the result shown has."""
        value = self.brightness_slider.value()
        self.brightness_value.setText(brightness_text(value / 100))
        self.brightness_reset.setEnabled(value != 0)
        doc = self.doc
        tip = ""
        if doc is not None and doc.enhanced is not None and doc.brightness != value / 100:
            tip = f"The photo shows brightness {brightness_text(doc.brightness)}"
            tip += " until the new one is ready" if doc.job is not None else (
                f"; Enhance (Ctrl+E) applies {brightness_text(value / 100)}")
        self.brightness_value.setToolTip(tip)

    def _still_showing(self) -> str:
        """``"; showing brightness +20"`` when the result shown is not the slider's."""
        doc = self.doc
        if doc is None or doc.enhanced is None or doc.brightness == self.brightness:
            return ""
        return f"; showing brightness {brightness_text(doc.brightness)}"

    def auto_strength(self) -> float | None:
        """Set the slider from the photo's exposure (no new enhancement)."""
        from hybridnet.contract import auto_strength

        if self.doc is None:
            return None
        s = auto_strength(self.doc.loaded.pixels)
        self.strength_slider.setValue(round(s * 100))
        self._status_message(f"Auto strength from the photo's exposure: {round(s * 100)} %", 4000)
        return s

    def _on_zoom(self, percent: float) -> None:
        self.zoom_label.setText(f"{percent:.0f} %" if percent >= 10 else f"{percent:.1f} %")

    # ------------------------------------------------------------------ saving

    def confirm(self, title: str, text: str, accept: str) -> bool:
        """Ask before replacing a file (tests replace this method)."""
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, parent=self)
        yes = box.addButton(accept, QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is yes

    def suggested_path(self) -> Path:
        assert self.doc is not None
        folder = Path(str(self.settings.value("paths/save", ""))) if self.settings.value(
            "paths/save") else self.doc.path.parent
        if not folder.is_dir():
            folder = self.doc.path.parent
        return folder / f"{self.doc.path.stem}_enhanced{self.doc.path.suffix}"

    def ask_save_path(self) -> Path | None:
        """The Save As dialog (replacement is confirmed by :meth:`save_as`, not the dialog)."""
        suggested = self.suggested_path()
        suffix = suggested.suffix.lower().replace(".jpeg", ".jpg").replace(".tiff", ".tif")
        filters = list(_SAVE_FILTERS.values())
        selected = _SAVE_FILTERS.get(suffix, filters[0])
        name, _ = QFileDialog.getSaveFileName(
            self, "Save enhanced photo", str(suggested), ";;".join(filters), selected,
            QFileDialog.Option.DontConfirmOverwrite)
        return Path(name) if name else None

    def save(self) -> None:
        """Write again to the file chosen with Save As, or ask (Save As)."""
        if self.doc is not None and self.doc.saved_to is not None:
            self._write(self.doc.saved_to, replace=True)
        else:
            self.save_as()

    def save_as(self, path: Path | None = None) -> bool:
        """Save the enhanced photo at the slider's strength to ``path`` (asked when
        ``None``); asks before replacing a file, and twice as clearly for the original.
        Returns whether the write was started."""
        doc = self.doc
        if doc is None or doc.enhanced is None or self._saving:
            return False
        if path is None:
            path = self.ask_save_path()
            if path is None:
                return False
        if not path.suffix:
            path = path.with_suffix(doc.path.suffix)
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            self.banner.show_message(f"Cannot save as {path.name}: use .jpg, .png, .tif, "
                                     ".webp or .bmp.")
            return False
        replace = False
        if path.exists() and path.resolve() == doc.path.resolve():
            if not self.confirm("Replace the original photo?",
                                f"“{path.name}” is the original photo. Replacing it with "
                                "the enhanced version cannot be undone.", "Replace Original"):
                return False
            replace = True
        elif path.exists():
            if not self.confirm("Replace existing file?",
                                f"“{path.name}” already exists in {path.parent}. Replace it?",
                                "Replace"):
                return False
            replace = True
        self._write(path, replace)
        return True

    def _write(self, path: Path, replace: bool) -> None:
        from hybridnet.contract import Blender
        from hybridnet.imageio import write_image

        doc = self.doc
        assert doc is not None and doc.enhanced is not None
        strength = self.strength
        original, enhanced, metadata = doc.loaded.pixels, doc.enhanced, doc.loaded.metadata
        brightness = doc.brightness  # the result's, whatever the slider shows by now
        self._saving = True
        self._update_actions()
        self._status_message(f"Saving {path.name}…")

        def work() -> Path:
            pixels = Blender(original, enhanced)(strength)  # full resolution, once
            return write_image(path, pixels, metadata, overwrite=replace)

        def done(written: Path) -> None:
            self._saving = False
            doc.saved_to = written
            self.last_saved = written
            self.settings.setValue("paths/save", str(written.parent))
            at = f", brightness {brightness_text(brightness)}" if brightness else ""
            self._status_message(f"Saved {written.name} ({round(strength * 100)} %{at})",
                                 5000)
            self._update_actions()

        def failed(exc: BaseException) -> None:
            self._saving = False
            self._status_message("")
            self.banner.show_message(f"Not saved: {_message(exc, path)}")
            self._update_actions()

        run_task(work, done, failed)

    # ------------------------------------------------------------------ state

    def _update_actions(self) -> None:
        has_doc = self.doc is not None
        has_result = has_doc and self.doc is not None and self.doc.enhanced is not None
        running = has_doc and self.doc is not None and self.doc.job is not None
        self.save_action.setEnabled(bool(has_result) and not self._saving)
        self.save_as_action.setEnabled(bool(has_result) and not self._saving)
        self.enhance_action.setEnabled(has_doc and not running)
        self.cancel_action.setEnabled(bool(running))
        self.auto_action.setEnabled(has_doc)
        self.auto_button.setEnabled(has_doc)
        self.next_action.setEnabled(len(self.files) > 1)
        self.prev_action.setEnabled(len(self.files) > 1)

    # ------------------------------------------------------------------ drag & drop

    def dragEnterEvent(self, event: QDragEnterEvent | None) -> None:
        if event is None:
            return
        if _dropped_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent | None) -> None:
        if event is None:
            return
        paths = _dropped_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    # ------------------------------------------------------------------ closing

    def has_unsaved_result(self) -> bool:
        """An enhanced photo that was never saved (closing would lose it)."""
        return self.doc is not None and self.doc.enhanced is not None and (
            self.doc.saved_to is None)

    def closeEvent(self, event: QCloseEvent | None) -> None:
        if self.has_unsaved_result() and not self.confirm(
            "Close without saving?",
            "The enhanced photo has not been saved; closing the window discards it.",
            "Close Without Saving",
        ):
            if event is not None:
                event.ignore()
            return
        self._brightness_timer.stop()
        if self.batch.running:
            self.batch.shutdown()  # cancels; the journal lets the next run resume
        self.save_settings()
        self.link.close()
        super().closeEvent(event)


def _dropped_paths(mime: Any) -> list[Path]:
    if mime is None or not mime.hasUrls():
        return []
    paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
    return [p for p in paths if p.is_dir() or p.suffix.lower() in SUPPORTED_SUFFIXES]


def _message(exc: BaseException, path: Path) -> str:
    """One line for the user, without repeating the file's path."""
    text = str(exc) or type(exc).__name__
    for prefix in (str(path), path.name):
        if text.startswith(prefix + ": "):
            text = text[len(prefix) + 2:]
    if isinstance(exc, FileExistsError):
        text = "the file appeared meanwhile; choose Save As again"
    return text[:1].upper() + text[1:]


def _bool(value: Any) -> bool:
    return value in (True, "true", "1", 1)


def _int(value: Any, low: int, high: int, default: int = 0) -> int:
    """A setting as an int in [low, high] (``default`` when it is not a number)."""
    try:
        return min(high, max(low, int(value)))
    except (TypeError, ValueError):
        return default


def _enhancing(brightness: float, tail: str = "") -> str:
    """The progress bar's text: ``Enhancing…`` or ``Enhancing at +40…``."""
    at = f" at {brightness_text(brightness)}" if brightness else ""
    return f"Enhancing{at}…{tail}"


def app_icon() -> QIcon:
    """The desktop icon shipped with the installer (empty when missing)."""
    path = Path(__file__).resolve().parents[2] / "installer" / "assets" / "enhance-low-light.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()
