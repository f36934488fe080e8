"""The desktop panel with pytest-qt, offscreen, against a real worker running a tiny model.

Open (command line, drop), enhance, slide (a cached re-blend: no new request, timed),
brightness (a new request once let go, the last value wins, the result keeps its own),
save and read back (format, depth, EXIF, ICC), never replace silently, cancel, the
worker's error and stopped states with their remedies and Restart, the Batch tab,
settings, shortcuts, light and dark palettes, zoom and pan.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _icc
import _tiny_worker as tw
import numpy as np
import pytest
from PIL import Image
from PyQt6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PyQt6.QtGui import QDragEnterEvent, QDropEvent, QKeySequence
from PyQt6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from hybridnet.contract import Blender
from hybridnet.imageio import ImageMetadata, read_image, write_image
from lowlight.cli import build_parser
from plugin.batch import JOURNAL_NAME, iter_journal
from plugin.panel import tasks
from plugin.panel.app import create_window
from plugin.panel.main_window import BRIGHTNESS_DELAY_MS, MainWindow
from plugin.panel.preview import PreviewSource
from plugin.panel.viewer import CompareView
from plugin.panel.wording import sentence, sentences
from plugin.panel.worker_link import WorkerLink, WorkerState, describe_device
from worker.client import WorkerClient

LONG = 90_000  # ms; the first enhancement may wait for the worker to load torch


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tw.write_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, weights: Path) -> Iterator[list[str]]:
    with tw.private_runtime(tmp_path_factory.mktemp("rt")):
        yield tw.start_args(weights)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A JPEG in Adobe RGB with EXIF, a 16-bit PNG with EXIF, a larger JPEG, a broken one."""
    folder = tmp_path_factory.mktemp("photos")
    jpg = write_image(folder / "night.jpg", tw.dark_image(120, 160, seed=1),
                      ImageMetadata(format="JPEG", exif=tw.make_exif("Cam A"),
                                    icc_profile=_icc.adobe_rgb_profile(),
                                    icc_handling="converted"))
    png = write_image(folder / "deep.png", tw.dark_image(96, 128, np.uint16, seed=2),
                      ImageMetadata(format="PNG", exif=tw.make_exif("Cam B")))
    big = write_image(folder / "big.jpg", tw.dark_image(600, 800, seed=3))
    broken = folder / "broken.png"
    broken.write_bytes(png.read_bytes()[:200])
    return {"jpg": jpg, "png": png, "big": big, "broken": broken}


@pytest.fixture(autouse=True)
def _close_without_asking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answer "yes" to confirmations no test looks at (a modal box would block offscreen);
    tests that check a confirmation replace ``confirm`` on their window."""
    monkeypatch.setattr(MainWindow, "confirm", lambda self, *args: True)


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "panel.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def make_window(
    qapp: QApplication, qtbot: QtBot, worker: list[str], settings: QSettings
) -> Iterator[Callable[..., MainWindow]]:
    windows: list[MainWindow] = []

    def make(settings: QSettings = settings, **kw: Any) -> MainWindow:
        w = create_window(qapp, kw.pop("args", worker), settings=settings, **kw)
        if settings.value("window/geometry") is None:
            w.resize(1000, 700)
        w.show()
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.close()
    qtbot.waitUntil(lambda: tasks.pending() == 0, timeout=LONG)


def _open(qtbot: QtBot, w: MainWindow, path: Path, *, enhanced: bool = True) -> None:
    w.open_paths([path])
    qtbot.waitUntil(lambda: w.doc is not None and w.doc.path == path, timeout=LONG)
    if enhanced:
        qtbot.waitUntil(lambda: w.doc is not None and w.doc.enhanced is not None, timeout=LONG)


def _saved(qtbot: QtBot, w: MainWindow, path: Path) -> None:
    qtbot.waitUntil(lambda: w.last_saved == path and not w._saving, timeout=LONG)


# --------------------------------------------------------------------------- opening


def test_lowlight_panel_command_opens_and_enhances(
    qapp: QApplication, worker: list[str], photos: dict[str, Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``lowlight panel FILE`` opens the window with the photo open and enhanced."""
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path))
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path))
    seen: dict[str, Any] = {}

    def event_loop() -> int:
        """``app.exec()`` stand-in: a real exec()/quit() would leave Qt's "quit now" flag
        set and stop every later pytest-qt wait from processing events."""
        deadline = time.monotonic() + LONG / 1000
        while time.monotonic() < deadline:
            qapp.processEvents()
            wins = [w for w in qapp.topLevelWidgets()
                    if isinstance(w, MainWindow) and w.isVisible()]
            if wins and wins[0].doc is not None and wins[0].doc.enhanced is not None:
                seen.update(doc=wins[0].doc, state=wins[0].link.state,
                            title=wins[0].windowTitle())
                wins[0].close()
                return 0
            time.sleep(0.01)
        return 1

    monkeypatch.setattr(qapp, "exec", event_loop)
    args = build_parser().parse_args(["panel", str(photos["jpg"]), "--theme", "light",
                                      *worker[:4]])
    assert args.handler(args) == 0
    assert seen["doc"].path == photos["jpg"] and seen["doc"].enhanced is not None
    assert seen["state"] is WorkerState.READY
    assert seen["title"].startswith("night.jpg")
    assert (tmp_path / "enhance-low-light" / "panel.conf").is_file()  # its own settings


def test_drop_opens_photo_and_folder_goes_to_batch(
    make_window: Callable[..., MainWindow], qtbot: QtBot, photos: dict[str, Path]
) -> None:
    w = make_window()

    def drop(path: Path) -> bool:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        enter = QDragEnterEvent(QPoint(60, 60), Qt.DropAction.CopyAction, mime,
                                Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(w, enter)
        if not enter.isAccepted():
            return False
        event = QDropEvent(QPointF(60, 60), Qt.DropAction.CopyAction, mime,
                           Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(w, event)
        return True

    assert drop(photos["png"])
    qtbot.waitUntil(lambda: w.doc is not None, timeout=LONG)
    assert w.doc is not None and w.doc.path == photos["png"]
    assert "128×96 · 16-bit PNG" in w.info_label.text()
    assert not drop(photos["png"].with_suffix(".txt"))  # not a photo: refused
    assert drop(photos["png"].parent)  # a folder is for the Batch tab
    assert w.tabs.currentWidget() is w.batch
    assert w.batch.input_edit.text() == str(photos["png"].parent)


def test_unreadable_photo_shows_a_banner(
    make_window: Callable[..., MainWindow], qtbot: QtBot, photos: dict[str, Path]
) -> None:
    w = make_window()
    w.open_paths([photos["broken"]])
    qtbot.waitUntil(lambda: w.banner.isVisible(), timeout=LONG)
    assert "Cannot open broken.png" in w.banner.label.text()
    assert w.doc is None and not w.save_as_action.isEnabled()


def test_multipage_tiff_tells_which_page_is_enhanced(
    make_window: Callable[..., MainWindow], qtbot: QtBot, tmp_path: Path
) -> None:
    pages = [Image.new("RGB", (40, 30), (v, v // 2, v // 3)) for v in (30, 60)]
    pages[0].save(tmp_path / "scan.tif", save_all=True, append_images=pages[1:])
    w = make_window()
    w.open_paths([tmp_path / "scan.tif"])
    qtbot.waitUntil(lambda: w.doc is not None, timeout=LONG)
    assert w.banner.isVisible()
    assert "Only the first of its 2 pages is enhanced" in w.banner.label.text()


# --------------------------------------------------------------------------- slider


def test_slider_reblends_the_cached_result_without_a_request(
    make_window: Callable[..., MainWindow], qtbot: QtBot, photos: dict[str, Path]
) -> None:
    w = make_window()
    _open(qtbot, w, photos["jpg"])
    assert w.link.requests == 1
    w.split_action.setChecked(False)  # toggle mode: the whole view shows one version
    w.strength_slider.setValue(0)

    def photo() -> Any:  # the view below the label chip
        v = w.viewer
        return v.grab().toImage().copy(0, 60, v.width(), v.height() - 60)

    zero = photo()
    w.original_action.setChecked(True)
    original = photo()
    w.original_action.setChecked(False)
    assert zero == original  # 0 %: exactly the original
    for value in range(0, 101, 5):
        w.strength_slider.setValue(value)
        w.viewer.repaint()
    full = photo()
    assert full != zero and w.strength_value.text() == "100 %"
    assert w.link.requests == 1  # no new inference for any slider move
    s = w.auto_strength()
    assert s is not None and w.strength_slider.value() == round(s * 100)
    assert w.link.requests == 1


def test_slider_reblends_a_bounded_preview_of_a_12_megapixel_photo(qtbot: QtBot) -> None:
    """Each slider step blends and paints a screen-sized preview, never the full photo.

    The time per step is measured by benchmarks/bench_panel.py (target 16 ms); here the
    preview's size bound, which makes it fast, and the repaint are checked.
    """
    rng = np.random.default_rng(0)
    original = (rng.random((3000, 4000, 3)) * 20000).astype(np.uint16)
    enhanced = (original.astype(np.uint32) * 3 // 2).astype(np.uint16)
    view = CompareView()
    qtbot.addWidget(view)
    view.resize(1280, 800)
    with qtbot.waitExposed(view):
        view.show()
    source = PreviewSource(original)
    source.set_enhanced(enhanced)
    view.set_source(source)
    view.refresh()
    for i in range(10):
        view.set_strength(0.2 + i * 0.05)
        view.repaint()
        layer = source.detail or source.overview  # the one matching the view
        blended = layer._blended
        assert blended is not None and blended[0] == view.strength  # it really painted
    shown = (source.detail or source.overview).before
    assert shown.size // 3 <= 1_500_000


def _worker_result(worker: list[str], pixels: Any, brightness: float) -> Any:
    """What the worker answers for ``pixels`` at ``brightness``, asked directly."""
    client = WorkerClient(start_args=worker)
    try:
        return client.enhance(pixels, 1.0, brightness=brightness)
    finally:
        client.close()


def test_brightness_re_enhances_once_let_go_and_the_result_keeps_its_brightness(
    make_window: Callable[..., MainWindow], qtbot: QtBot, photos: dict[str, Path],
    worker: list[str], tmp_path: Path,
) -> None:
    w = make_window()
    _open(qtbot, w, photos["png"])
    doc = w.doc
    assert doc is not None and doc.enhanced is not None
    assert doc.brightness == 0.0 and w.link.requests == 1
    at_zero = doc.enhanced
    slider = w.brightness_slider
    assert slider.accessibleName() == "Brightness" and "brighter" in slider.toolTip()
    assert w.brightness_value.text() == "0" and not w.brightness_reset.isEnabled()

    def let_go(value: int) -> None:
        """A drag to ``value`` (setSliderDown is what QSlider's mouse handlers call)."""
        slider.setSliderDown(True)
        slider.setValue(value)
        slider.setSliderDown(False)

    # dragging: the label follows the mouse, the worker is asked once, on release
    slider.setSliderDown(True)
    for value in range(0, 101, 10):
        slider.setValue(value)
    qtbot.wait(2 * BRIGHTNESS_DELAY_MS)
    assert w.link.requests == 1 and w.brightness_value.text() == "+100"
    assert doc.brightness == 0.0 and doc.enhanced is at_zero
    slider.setSliderDown(False)  # emits sliderReleased
    assert w.link.requests == 2 and doc.job is not None
    assert w.progress.format().startswith("Enhancing at +100")
    assert "shows brightness 0 until the new one is ready" in w.brightness_value.toolTip()
    qtbot.waitUntil(lambda: doc.job is None, timeout=LONG)
    assert doc.brightness == 1.0 and "at brightness +100" in w.message_label.text()
    np.testing.assert_array_equal(doc.enhanced, _worker_result(worker, doc.loaded.pixels, 1.0))
    assert not np.array_equal(doc.enhanced, at_zero)
    assert doc.preview.enhanced is doc.enhanced  # the view shows it
    assert w.brightness_value.toolTip() == "" and w.brightness_reset.isEnabled()

    # keys (and the wheel): one request, a moment after the last change
    slider.setFocus()
    for _ in range(4):
        qtbot.keyClick(slider, Qt.Key.Key_Left)
    assert slider.value() == 80 and w.link.requests == 2
    qtbot.waitUntil(lambda: w.link.requests == 3, timeout=10 * BRIGHTNESS_DELAY_MS)
    qtbot.waitUntil(lambda: doc.job is None, timeout=LONG)
    assert doc.brightness == 0.8 and w.link.requests == 3

    # a new value while a request runs supersedes it: the last value wins
    let_go(-100)
    let_go(50)
    assert w.link.requests == 5
    # ... and the slider moves on (held) before the answer: the result keeps +50
    slider.setSliderDown(True)
    slider.setValue(-40)
    qtbot.waitUntil(lambda: doc.job is None, timeout=LONG)
    at_half = _worker_result(worker, doc.loaded.pixels, 0.5)
    assert doc.brightness == 0.5 and w.brightness_value.text() == "-40"
    np.testing.assert_array_equal(doc.enhanced, at_half)
    assert doc.preview.enhanced is doc.enhanced
    assert "shows brightness +50" in w.brightness_value.toolTip()
    assert "at brightness +50" in w.message_label.text()

    # Save writes the result shown, and says which brightness it has
    assert w.link.requests == 5
    out = tmp_path / "deep_bright.png"
    assert w.save_as(out)
    _saved(qtbot, w, out)
    np.testing.assert_array_equal(read_image(out).pixels,
                                  Blender(doc.loaded.pixels, at_half)(w.strength))
    assert "brightness +50" in w.message_label.text()
    assert "-40" not in w.message_label.text()

    # Reset while the -40 request runs: back to 0, and to exactly b=0's result
    slider.setSliderDown(False)
    assert w.link.requests == 6
    w.brightness_reset.click()
    assert slider.value() == 0 and w.link.requests == 7
    qtbot.waitUntil(lambda: doc.job is None, timeout=LONG)
    assert doc.brightness == 0.0 and not w.brightness_reset.isEnabled()
    np.testing.assert_array_equal(doc.enhanced, at_zero)
    w.brightness_reset.click()  # already 0: nothing to do
    assert w.link.requests == 7


# --------------------------------------------------------------------------- saving


def test_save_as_keeps_format_depth_exif_and_icc(
    make_window: Callable[..., MainWindow], qtbot: QtBot, photos: dict[str, Path],
    tmp_path: Path,
) -> None:
    w = make_window()
    _open(qtbot, w, photos["jpg"])
    w.strength_slider.setValue(60)
    out = tmp_path / "night_enhanced.jpg"
    assert w.save_as(out)
    _saved(qtbot, w, out)
    src, got = read_image(photos["jpg"]), read_image(out)
    assert got.metadata.format == "JPEG" and got.pixels.dtype == np.uint8
    assert got.metadata.exif == src.metadata.exif
    assert got.metadata.icc_profile == src.metadata.icc_profile
    assert got.metadata.icc_handling == "converted"  # Adobe RGB, written back as such

    _open(qtbot, w, photos["png"])
    assert w.doc is not None and w.doc.enhanced is not None
    for name in ("deep_enhanced.png", "deep_enhanced.tif"):
        target = tmp_path / name
        assert w.save_as(target)
        _saved(qtbot, w, target)
        back = read_image(target)
        assert back.pixels.dtype == np.uint16
        assert back.metadata.exif == read_image(photos["png"]).metadata.exif
        expected = Blender(w.doc.loaded.pixels, w.doc.enhanced)(0.6)
        np.testing.assert_array_equal(back.pixels, expected)  # full resolution, lossless


def test_never_replaces_silently(
    make_window: Callable[..., MainWindow], qtbot: QtBot, photos: dict[str, Path],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    photo = tmp_path / "mine.png"
    photo.write_bytes(photos["png"].read_bytes())
    w = make_window()
    _open(qtbot, w, photo)
    asked: list[str] = []
    answer = [False]

    def confirm(title: str, text: str, accept: str) -> bool:
        asked.append(title)
        return answer[0]

    monkeypatch.setattr(w, "confirm", confirm)
    # Save without a previous Save As is Save As, proposing NAME_enhanced beside the photo
    assert w.suggested_path() == tmp_path / "mine_enhanced.png"
    monkeypatch.setattr(w, "ask_save_path", lambda: tmp_path / "mine_enhanced.png")
    w.save()
    _saved(qtbot, w, tmp_path / "mine_enhanced.png")
    assert asked == []
    original = photo.read_bytes()
    assert not w.save_as(photo)  # declined
    assert asked == ["Replace the original photo?"] and photo.read_bytes() == original
    other = tmp_path / "other.png"
    other.write_bytes(b"keep me")
    assert not w.save_as(other)
    assert asked[-1] == "Replace existing file?" and other.read_bytes() == b"keep me"
    answer[0] = True
    assert w.save_as(photo)
    _saved(qtbot, w, photo)
    assert photo.read_bytes() != original
    # Save now writes again to the file chosen last, without asking
    asked.clear()
    w.strength_slider.setValue(30)
    w.save()
    qtbot.waitUntil(lambda: not w._saving, timeout=LONG)
    assert asked == []


def test_closing_with_an_unsaved_result_asks_first(
    make_window: Callable[..., MainWindow], qtbot: QtBot, photos: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = make_window()
    _open(qtbot, w, photos["png"])
    asked: list[str] = []
    answer = [False]

    def confirm(title: str, text: str, accept: str) -> bool:
        asked.append(title)
        return answer[0]

    monkeypatch.setattr(w, "confirm", confirm)
    assert w.has_unsaved_result()
    w.close()
    assert asked == ["Close without saving?"] and w.isVisible()  # declined: still open
    answer[0] = True
    w.close()
    assert not w.isVisible()


# --------------------------------------------------------------------------- worker


def test_cancel_stops_the_enhancement(
    make_window: Callable[..., MainWindow], qtbot: QtBot, photos: dict[str, Path]
) -> None:
    w = make_window()
    _open(qtbot, w, photos["big"], enhanced=False)
    qtbot.waitUntil(lambda: w.link.state is WorkerState.BUSY, timeout=LONG)
    assert w.cancel_action.isEnabled() and w.progress.isVisible()
    w.cancel_action.trigger()
    qtbot.waitUntil(lambda: w.doc is not None and w.doc.job is None, timeout=LONG)
    assert w.doc is not None and w.doc.enhanced is None
    assert "cancelled" in w.message_label.text()
    assert w.link.state is WorkerState.READY and not w.progress.isVisible()


def test_killed_worker_shows_stopped_and_restart_works(
    make_window: Callable[..., MainWindow], qtbot: QtBot, photos: dict[str, Path]
) -> None:
    w = make_window()
    qtbot.waitUntil(lambda: w.link.state is WorkerState.READY, timeout=LONG)
    assert "Ready: CPU" in w.worker_status.title.text()
    assert not w.worker_status.restart_button.isVisible()
    old = tw.kill_worker()
    w.link.check_alive()
    assert w.link.state is WorkerState.STOPPED
    assert "Restart" in w.worker_status.remedy.text()
    assert w.worker_status.restart_button.isVisible()
    w.worker_status.restart_button.click()
    qtbot.waitUntil(lambda: w.link.state is WorkerState.READY, timeout=LONG)
    assert tw.worker_pid() not in (None, old)
    _open(qtbot, w, photos["png"])  # and it enhances again


def test_panel_starts_when_the_worker_cannot(
    qapp: QApplication, qtbot: QtBot, settings: QSettings, tmp_path: Path
) -> None:
    run = tmp_path / "rt"
    run.mkdir(mode=0o700)
    missing = tmp_path / "missing.safetensors"
    link = WorkerLink(["--weights", str(missing), "--device", "cpu"], runtime_dir=run)
    w = MainWindow(settings, link=link)
    w.show()
    try:
        link.start()
        qtbot.waitUntil(lambda: link.state is WorkerState.ERROR, timeout=LONG)
        status = link.status
        assert status.remedy and status.code in ("no_model", "start_failed"), status
        assert w.worker_status.restart_button.isVisible()
        assert status.remedy in w.worker_status.remedy.text()
        assert w.open_action.isEnabled()  # the window works without a worker
    finally:
        w.close()


def test_device_descriptions() -> None:
    assert describe_device({"device": "cuda:0", "device_name": "NVIDIA H100"}) == (
        "GPU (NVIDIA H100)", "")
    device, note = describe_device({"device": "cpu", "device_note": "no NVIDIA driver"})
    assert device == "CPU" and note.startswith("No GPU found, running on the CPU")
    assert describe_device({"device": "cpu", "device_note": "the CPU was asked for "
                            "(--device cpu)"}) == ("CPU", "")


class TestSentence:
    def test_capitalises_and_ends_a_message(self) -> None:
        assert sentence("the worker stopped") == "The worker stopped."
        assert sentence("  converted from 16-bit  ") == "Converted from 16-bit."

    def test_keeps_what_is_already_a_sentence(self) -> None:
        assert sentence("GPU memory is full!") == "GPU memory is full!"
        assert sentence("see `lowlight worker log` (details)") == (
            "See `lowlight worker log` (details)")
        assert sentence("iPhone photo, 16 %.") == "iPhone photo, 16 %."
        assert sentence("   ") == ""

    def test_joins_notes(self) -> None:
        assert sentences(["page 1 of 3 is enhanced", "", "converted to RGB."]) == (
            "Page 1 of 3 is enhanced. Converted to RGB.")


# --------------------------------------------------------------------------- batch tab


def test_batch_tab_runs_a_folder_with_a_broken_file(
    make_window: Callable[..., MainWindow], qtbot: QtBot, photos: dict[str, Path],
    tmp_path: Path,
) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for key in ("jpg", "png", "broken"):
        (src / photos[key].name).write_bytes(photos[key].read_bytes())
    w = make_window()
    tab = w.batch
    w.tabs.setCurrentWidget(tab)
    tab.input_edit.setText(str(src))
    tab.output_edit.setText(str(src / "out"))
    tab.replan()
    assert not tab.start_button.isEnabled() and "input folder" in tab.plan_label.text()
    tab.output_edit.setText(str(out))
    tab.auto_box.setChecked(True)
    tab.brightness_spin.setValue(-50)
    assert tab.brightness_slider.value() == -50 and tab.brightness_spin.text() == "-50"
    assert tab.options().brightness == -0.5
    tab.format_box.setCurrentIndex(tab.format_box.findData("tiff"))
    tab.replan()
    assert "3 photos" in tab.plan_label.text() and tab.start_button.isEnabled()
    assert tab.example_label.text() == "IMG_0001.jpg → IMG_0001_enhanced.tif"
    assert tab.start()
    qtbot.waitUntil(lambda: not tab.running, timeout=LONG)
    assert tab.summary is not None and len(tab.summary.enhanced) == 2
    assert tab.failure_list.count() == 1 and "broken.png" in tab.failure_list.item(0).text()
    assert "2 enhanced, 1 failed of 3 files" in tab.summary_label.text()
    assert sorted(p.name for p in out.glob("*.tif")) == ["deep_enhanced.tif",
                                                         "night_enhanced.tif"]
    header = next(iter_journal(out / JOURNAL_NAME))
    assert header["brightness"] == -0.5 and header["strength"] == "auto"
    assert tab.current_label.text() == "Done; 1 not enhanced"
    tab.replan()
    assert "2 already done" in tab.plan_label.text()
    assert tab.start_button.text() == "Retry Failed"


# --------------------------------------------------------------------------- quality bar


def test_settings_are_remembered(
    make_window: Callable[..., MainWindow], qtbot: QtBot, photos: dict[str, Path],
    settings: QSettings, tmp_path: Path,
) -> None:
    w = make_window()
    _open(qtbot, w, photos["png"], enhanced=False)
    w.strength_slider.setValue(37)
    w.brightness_slider.setValue(-25)
    w.split_action.setChecked(False)
    w.set_theme("dark")
    w.resize(760, 560)  # within the offscreen screen (800×600): restoreGeometry clamps
    w.batch.input_edit.setText(str(tmp_path))
    w.batch.recursive_box.setChecked(True)
    w.batch.brightness_spin.setValue(30)
    w.close()
    again = make_window(settings)
    assert again.strength_slider.value() == 37 and again.viewer.strength == 0.37
    assert again.brightness_slider.value() == -25 and again.brightness == -0.25
    assert again.brightness_value.text() == "-25" and again.brightness_reset.isEnabled()
    assert not again.split_action.isChecked() and not again.viewer.split
    assert again.size().width() == 760 and again.size().height() == 560
    assert [a.data() for a in again.theme_group.actions() if a.isChecked()] == ["dark"]
    assert again.recent_files()[0] == photos["png"]
    assert str(settings.value("paths/open")) == str(photos["png"].parent)
    assert again.batch.input_edit.text() == str(tmp_path)
    assert again.batch.recursive_box.isChecked()
    assert again.batch.brightness_spin.text() == "+30"
    assert again.batch.options().brightness == 0.3
    again.set_theme("light")


def test_shortcuts(make_window: Callable[..., MainWindow], qtbot: QtBot,
                   photos: dict[str, Path]) -> None:
    w = make_window()
    expected = {
        w.open_action: "Ctrl+O", w.save_action: "Ctrl+S", w.save_as_action: "Ctrl+Shift+S",
        w.enhance_action: "Ctrl+E", w.cancel_action: "Esc", w.split_action: "Y",
        w.original_action: "\\", w.fit_action: "Ctrl+0", w.actual_action: "Ctrl+1",
        w.zoom_in_action: "Ctrl++", w.zoom_out_action: "Ctrl+-",
        w.auto_action: "Ctrl+Shift+A", w.restart_action: "Ctrl+Shift+R",
    }
    for action, keys in expected.items():
        names = [s.toString(QKeySequence.SequenceFormat.PortableText) for s in action.shortcuts()]
        assert keys in names, (action.text(), names)
    _open(qtbot, w, photos["jpg"])
    w.activateWindow()
    w.viewer.setFocus()
    qtbot.keyClick(w.viewer, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert w.viewer.zoom == pytest.approx(1.0)
    qtbot.keyClick(w.viewer, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert w.viewer.is_fit
    split = w.viewer.split
    qtbot.keyClick(w.viewer, Qt.Key.Key_Y)
    assert w.viewer.split is not split


def test_light_and_dark_palettes(make_window: Callable[..., MainWindow],
                                 qapp: QApplication) -> None:
    w = make_window()
    for name, dark in (("dark", True), ("light", False)):
        w.set_theme(name)
        qapp.processEvents()  # the palette reaches the widgets through events
        window_colour = qapp.palette().color(qapp.palette().ColorRole.Window)
        assert (window_colour.lightness() < 128) is dark
        corner = w.viewer.grab().toImage().pixelColor(3, 3)  # the view's background
        assert (corner.lightness() < 128) is dark


def test_zoom_pan_fit_and_detail(qtbot: QtBot) -> None:
    rng = np.random.default_rng(1)
    original = rng.integers(0, 255, (2000, 3000, 3), dtype=np.uint8)
    view = CompareView()
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    source = PreviewSource(original)
    source.set_enhanced(255 - original)
    view.set_source(source)
    assert view.is_fit and view.zoom < 0.3 and source.overview.step > 1
    anchor = QPointF(200, 150)
    fixed = view.to_image(anchor)
    view.actual_size(anchor)
    assert view.zoom == pytest.approx(1.0) and not view.is_fit
    assert view.to_image(anchor).x() == pytest.approx(fixed.x(), abs=1e-6)
    view.refresh_detail()
    detail = source.detail
    assert detail is not None and detail.step == 1 and detail.covers(view.visible_rect())
    # the detail layer holds the photo's real pixels
    r = detail.rect
    np.testing.assert_array_equal(detail.before, original[r.y():r.bottom() + 1,
                                                          r.x():r.right() + 1])
    before = view.center
    view.pan_by(100, 0)
    assert view.center.x() == pytest.approx(before.x() - 100)
    view.set_divider(0.25)
    assert view.divider == 0.25
    view.fit()
    assert view.is_fit and source.detail_for(view.visible_rect(), view.zoom) is None
