"""The batch engine (:mod:`plugin.batch`) and ``lowlight batch``, against a real worker
running a tiny model: a dozen files with a broken one, a worker killed mid-batch, a
batch killed and resumed, never overwriting, the input-folder guard, pause and cancel,
brightness from the options (and ``--brightness``) to the worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _tiny_worker as tw
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from hybridnet.imageio import ImageMetadata, read_image, write_image
from lowlight.cli import build_parser, main
from plugin.batch import (
    JOURNAL_NAME,
    BatchError,
    BatchOptions,
    BatchProgress,
    BatchRunner,
    check_pattern,
    discover,
    iter_journal,
    output_name,
    plan,
)
from worker.client import WorkerClient, WorkerError


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tw.write_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, weights: Path) -> Iterator[list[str]]:
    """A private runtime folder for this module; yields the worker's start arguments."""
    with tw.private_runtime(tmp_path_factory.mktemp("rt")):
        yield tw.start_args(weights)


def _photos(folder: Path, count: int, *, broken: int | None = None,
            size: tuple[int, int] = (40, 56), sub: bool = False) -> list[Path]:
    """``count`` small dark photos in assorted formats (``broken``: a truncated PNG)."""
    folder.mkdir(parents=True, exist_ok=True)
    kinds = [(".jpg", np.uint8), (".png", np.uint16), (".tif", np.uint16), (".webp", np.uint8),
             (".png", np.uint8), (".bmp", np.uint8)]
    paths = []
    for i in range(count):
        suffix, dtype = kinds[i % len(kinds)]
        target = (folder / "sub" if sub and i % 3 == 2 else folder) / f"p{i:02d}{suffix}"
        target.parent.mkdir(exist_ok=True)
        img = tw.dark_image(*size, dtype=dtype, seed=i)
        meta = ImageMetadata(format="JPEG", exif=tw.make_exif()) if suffix == ".jpg" else None
        write_image(target, img, meta)
        if i == broken:
            data = target.read_bytes()
            target.write_bytes(data[: len(data) // 2])
        paths.append(target)
    return paths


def _opts(src: Path, out: Path, **kw: Any) -> BatchOptions:
    return BatchOptions(input_dir=src, output_dir=out, **kw)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Non-hidden files: name -> (inode, mtime_ns), to prove nothing was rewritten."""
    return {p.relative_to(folder).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")}


# --------------------------------------------------------------------------- planning


class TestPlanning:
    def test_pattern_rules(self) -> None:
        check_pattern("{name}_enhanced")
        check_pattern("{name}-{strength}-{ext}")
        for bad in ("", "enhanced", "{nam}", "{name", "a/{name}", ".{name}"):
            with pytest.raises(BatchError):
                check_pattern(bad)

    def test_output_names(self, tmp_path: Path) -> None:
        src = tmp_path / "IMG_1.JPG"
        assert output_name(src, _opts(tmp_path, tmp_path / "o")) == "IMG_1_enhanced.JPG"
        assert output_name(src, _opts(tmp_path, tmp_path / "o", output_format="png",
                                      pattern="{name}")) == "IMG_1.png"
        assert output_name(src, _opts(tmp_path, tmp_path / "o", strength=0.8,
                                      pattern="{name}_{strength}_{ext}")) == "IMG_1_80_JPG.JPG"
        assert output_name(src, _opts(tmp_path, tmp_path / "o", strength="auto",
                                      pattern="{name}_{strength}")) == "IMG_1_auto.JPG"

    def test_input_folder_guard(self, tmp_path: Path) -> None:
        src = tmp_path / "in"
        _photos(src, 2)
        for out in (src, src / "enhanced", src / "a" / "b"):
            with pytest.raises(BatchError, match="input folder"):
                plan(_opts(src, out))
        assert not (src / "enhanced").exists()
        # allowed: outputs go beside their inputs, and are not inputs on the next run
        p = plan(_opts(src, src, allow_input_folder=True))
        assert [i.out_key for i in p.todo] == ["p00_enhanced.jpg", "p01_enhanced.png"]
        write_image(src / "p00_enhanced.jpg", tw.dark_image(8, 8))
        again = plan(_opts(src, src, allow_input_folder=True))
        assert [i.key for i in again.todo] == ["p01.png"]
        assert [i.key for i in again.existing] == ["p00.jpg"]
        # ... but an output never replaces its input
        same = plan(_opts(src, src, allow_input_folder=True, pattern="{name}"))
        assert not same.todo and len(same.refused) == 3
        assert "replace an input" in same.refused[0].reason

    def test_missing_folder_and_file_as_output(self, tmp_path: Path) -> None:
        with pytest.raises(BatchError, match="does not exist"):
            plan(_opts(tmp_path / "nope", tmp_path / "o"))
        (tmp_path / "file").write_text("x")
        with pytest.raises(BatchError, match="is a file"):
            plan(_opts(tmp_path, tmp_path / "file"))

    def test_discovery_recursive_skips_hidden_and_output(self, tmp_path: Path) -> None:
        src = tmp_path / "in"
        _photos(src, 6, sub=True)
        (src / ".hidden.jpg").write_bytes(b"x")
        (src / "notes.txt").write_text("x")
        (src / ".cache").mkdir()
        write_image(src / ".cache" / "x.png", tw.dark_image(4, 4))
        out = src / "out"
        out.mkdir()
        write_image(out / "old.png", tw.dark_image(4, 4))
        flat = discover(_opts(src, out, allow_input_folder=True))
        deep = discover(_opts(src, out, recursive=True, allow_input_folder=True))
        assert [p.name for p in flat] == ["p00.jpg", "p01.png", "p03.webp", "p04.png"]
        assert sorted(p.relative_to(src).as_posix() for p in deep) == [
            "p00.jpg", "p01.png", "p03.webp", "p04.png", "sub/p02.tif", "sub/p05.bmp"]

    def test_brightness_is_checked_and_journalled(self, tmp_path: Path) -> None:
        src = tmp_path / "in"
        _photos(src, 1)
        for bad, why in ((1.5, r"between -1 \(darker\) and 1 \(brighter\), got 1.5"),
                         (-1.01, "between"), (float("nan"), "between"), ("0.5", "a number"),
                         (True, "a number"), (None, "a number")):
            with pytest.raises(BatchError, match=f"^brightness must be {why}") as info:
                plan(_opts(src, tmp_path / "o", brightness=bad))
            assert "\n" not in str(info.value)
        for ok in (-1, 0, 0.25, 1.0):
            assert len(plan(_opts(src, tmp_path / "o", brightness=ok)).todo) == 1
        header = _opts(src, tmp_path / "o", brightness=-0.25).journal_header()
        assert header["brightness"] == -0.25
        assert _opts(src, tmp_path / "o").brightness == 0.0

    def test_cli_brightness_argument(self, capsys: pytest.CaptureFixture[str]) -> None:
        parser = build_parser()
        assert parser.parse_args(["batch", "in", "out"]).brightness == 0.0
        assert parser.parse_args(["batch", "in", "out", "--brightness", "-0.5"]).brightness \
            == -0.5
        for bad, why in (("2", "between -1 (darker) and 1 (brighter)"),
                         ("brighter", "a number from -1 (darker) to 1 (brighter)")):
            with pytest.raises(SystemExit) as exit_info:
                parser.parse_args(["batch", "in", "out", "--brightness", bad])
            assert exit_info.value.code == 2
            assert f"--brightness: brightness must be {why}" in capsys.readouterr().err

    def test_colliding_outputs_are_refused(self, tmp_path: Path) -> None:
        src = tmp_path / "in"
        src.mkdir()
        write_image(src / "a.jpg", tw.dark_image(8, 8))
        write_image(src / "a.png", tw.dark_image(8, 8))
        p = plan(_opts(src, tmp_path / "out", output_format="tiff"))
        assert [i.key for i in p.todo] == ["a.jpg"]
        assert "also the output of a.jpg" in str(p.refused[0])


# --------------------------------------------------------------------------- running


class TestRealWorker:
    def test_recursive_mirrors_sub_folders(self, tmp_path: Path, worker: list[str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
        """Sub-folders (spaces and non-ASCII in the names too) are created in the output,
        from the command line as from the panel's runner, and a rerun redoes nothing."""
        src, out = tmp_path / "in", tmp_path / "out"
        folders = [src, src / "sub", src / "sub" / "deeper", src / "Été 2024" / "ночь"]
        for i, folder in enumerate(folders):
            folder.mkdir(parents=True, exist_ok=True)
            write_image(folder / f"a{i}.png", tw.dark_image(40, 56, np.uint8, seed=i))
        code = main(["batch", "--recursive", str(src), str(out), "-q", *worker[:4]])
        assert code == 0, capsys.readouterr().err
        for i, folder in enumerate(folders):
            target = out / folder.relative_to(src) / f"a{i}_enhanced.png"
            assert target.is_file(), target
            assert read_image(target).pixels.shape == (40, 56, 3)
        before = _snapshot(out)
        again = BatchRunner(_opts(src, out, recursive=True), start_args=worker).run()
        assert again.complete and not again.enhanced and len(again.already_done) == 4
        assert _snapshot(out) == before

    def test_rerun_removes_a_temporary_left_between_link_and_unlink(
            self, tmp_path: Path, worker: list[str]) -> None:
        src, out = tmp_path / "in", tmp_path / "out"
        _photos(src, 2)
        assert BatchRunner(_opts(src, out), start_args=worker).run().complete
        target = out / "p00_enhanced.jpg"
        leftover = out / ".p00_enhanced.jpg.tmp-0123456789ab"
        os.link(target, leftover)  # what a kill after os.link, before os.unlink, leaves
        unrelated = out / ".p01_enhanced.jpg.tmp-ffffffffffff"
        unrelated.write_bytes(b"not a link of anything")
        data = target.read_bytes()
        again = BatchRunner(_opts(src, out), start_args=worker).run()
        assert again.complete and not again.enhanced
        assert not leftover.exists() and target.read_bytes() == data
        assert unrelated.exists()  # not a finished write's link: not ours to judge here

    def test_rerun_with_other_settings_says_what_it_kept(
            self, tmp_path: Path, worker: list[str]) -> None:
        src, out = tmp_path / "in", tmp_path / "out"
        _photos(src, 2)
        first = BatchRunner(_opts(src, out), start_args=worker).run()
        assert first.complete and not first.notices
        before = _snapshot(out)
        again = BatchRunner(_opts(src, out, strength=0.5, brightness=0.5),
                            start_args=worker).run()
        assert not again.enhanced and len(again.already_done) == 2
        assert _snapshot(out) == before  # nothing a user has is touched
        said = [n for n in again.notices if "other settings" in n]
        assert len(said) == 1, again.notices
        assert "strength 1.0 -> 0.5" in said[0] and "brightness 0.0 -> 0.5" in said[0]
        assert "delete them" in said[0]
        same = BatchRunner(_opts(src, out, strength=0.5, brightness=0.5),
                           start_args=worker).run()
        assert not [n for n in same.notices if "other settings" in n]  # now the same

    def test_output_sub_folder_that_cannot_be_made_fails_only_its_files(
            self, tmp_path: Path, worker: list[str]) -> None:
        src, out = tmp_path / "in", tmp_path / "out"
        (src / "sub").mkdir(parents=True)
        write_image(src / "a.png", tw.dark_image(40, 56, np.uint8, seed=1))
        write_image(src / "sub" / "b.png", tw.dark_image(40, 56, np.uint8, seed=2))
        out.mkdir()
        (out / "sub").write_text("a file where the folder should go")
        summary = BatchRunner(_opts(src, out, recursive=True), start_args=worker).run()
        assert [p.name for p in summary.enhanced] == ["a_enhanced.png"]
        assert len(summary.failures) == 1 and "cannot create the output folder" in \
            summary.failures[0].reason
        assert (out / "sub").read_text() == "a file where the folder should go"

    def test_dozen_files_one_broken_then_nothing_redone(
        self, tmp_path: Path, worker: list[str]
    ) -> None:
        src, out = tmp_path / "in", tmp_path / "out"
        photos = _photos(src, 12, broken=7)
        reports: list[BatchProgress] = []
        summary = BatchRunner(_opts(src, out, strength=0.8), start_args=worker,
                              progress=reports.append).run()
        assert len(summary.enhanced) == 11 and summary.total == 12
        assert len(summary.failures) == 1
        failure = summary.failures[0]
        assert failure.key == "p07.png" and "\n" not in str(failure)
        assert "truncated" in failure.reason or "damaged" in failure.reason, failure.reason
        assert not summary.complete and "1 failed" in summary.headline()
        # progress: counts only go up, the last report says all 12 are finished
        assert [r.done for r in reports] == sorted(r.done for r in reports)
        assert reports[-1].done == 12 and reports[-1].current is None
        assert any(r.eta_s is not None for r in reports)
        # outputs keep format, depth and EXIF
        for photo in photos:
            target = out / f"{photo.stem}_enhanced{photo.suffix}"
            if photo.name == "p07.png":
                assert not target.exists()
                continue
            got, orig = read_image(target), read_image(photo)
            assert got.metadata.format == orig.metadata.format
            assert got.pixels.dtype == orig.pixels.dtype
            assert got.pixels.shape == orig.pixels.shape
            if photo.suffix == ".jpg":
                assert got.metadata.exif == orig.metadata.exif
        events = list(iter_journal(out / JOURNAL_NAME))
        assert [e["event"] for e in events].count("done") == 11
        assert [e["src"] for e in events if e["event"] == "failed"] == ["p07.png"]
        # a second run redoes nothing and lists the broken file again
        before = _snapshot(out)
        again = BatchRunner(_opts(src, out, strength=0.8), start_args=worker).run()
        assert not again.enhanced and len(again.already_done) == 11
        assert [f.key for f in again.failures] == ["p07.png"]
        assert _snapshot(out) == before

    def test_worker_killed_mid_file_is_restarted_and_file_retried(
        self, tmp_path: Path, worker: list[str]
    ) -> None:
        src, out = tmp_path / "in", tmp_path / "out"
        _photos(src, 5)
        write_image(src / "p02.tif", tw.dark_image(320, 480, np.uint16, seed=9),
                    overwrite=True)  # bigger, so the kill lands while the worker computes
        calls: list[int] = []
        pids: list[int | None] = []

        def factory() -> WorkerClient:
            client = WorkerClient(start_args=worker)
            real = client.enhance

            def enhance(image: NDArray[Any], *a: Any, **kw: Any) -> NDArray[Any]:
                calls.append(image.shape[0])
                if len(calls) == 3:  # the worker dies while it works on p02 (tile 1 of n)
                    pids.append(tw.worker_pid())
                    report = kw["progress"]

                    def progress(done: int, total: int) -> None:
                        if done < total and tw.worker_pid() == pids[0]:
                            tw.kill_worker()
                        report(done, total)

                    kw["progress"] = progress
                return real(image, *a, **kw)

            client.enhance = enhance  # type: ignore[method-assign]
            return client

        summary = BatchRunner(_opts(src, out, tile_size=136), client_factory=factory).run()
        assert summary.complete, summary.failures
        assert len(summary.enhanced) == 5 and summary.retried == 1
        assert calls[2:4] == [320, 320]  # p02 sent twice: once to the dead worker
        assert tw.worker_pid() not in (None, pids[0])  # a new worker took over
        assert read_image(out / "p02_enhanced.tif").pixels.shape == (320, 480, 3)

    def test_killed_batch_resumes_without_redoing_or_losing(
        self, tmp_path: Path, worker: list[str]
    ) -> None:
        """``lowlight batch`` killed (SIGKILL) mid-run, then run again."""
        src, out = tmp_path / "in", tmp_path / "out"
        photos = _photos(src, 12, broken=4, size=(200, 300))
        cmd = [sys.executable, "-m", "lowlight", "batch", str(src), str(out), "-q",
               "--strength", "auto", *worker[:4]]
        proc = subprocess.Popen(cmd, cwd=tw.ROOT, stderr=subprocess.PIPE, text=True)
        journal = out / JOURNAL_NAME
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            done = [e for e in iter_journal(journal) if e["event"] == "done"]
            if len(done) >= 4:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        first = list(iter_journal(journal))
        finished = {e["src"] for e in first if e["event"] in ("done",)}
        before = {k: v for k, v in _snapshot(out).items()}
        assert len(before) >= 4
        code = main(["batch", str(src), str(out), "-q", "--strength", "auto", *worker[:4]])
        assert code == 1  # p04 is broken
        after = _snapshot(out)
        for name, stamp in before.items():
            assert after[name] == stamp, f"{name} was rewritten"
        expected = {f"{p.stem}_enhanced{p.suffix}" for p in photos if p.name != "p04.png"}
        assert set(after) == expected
        second = list(iter_journal(journal))[len(first):]
        restarted = {e["src"] for e in second if e["event"] == "start"}
        assert not restarted & finished
        assert {e["src"] for e in second if e["event"] == "failed"} == {"p04.png"}
        assert not [p for p in out.iterdir() if ".tmp-" in p.name]

    def test_existing_output_never_overwritten(self, tmp_path: Path, worker: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
        src, out = tmp_path / "in", tmp_path / "out"
        _photos(src, 3)
        out.mkdir()
        (out / "p01_enhanced.png").write_bytes(b"mine")
        code = main(["batch", str(src), str(out), "-q", *worker[:4]])
        err = capsys.readouterr().err
        assert code == 0, err
        assert (out / "p01_enhanced.png").read_bytes() == b"mine"
        assert "2 enhanced, 1 skipped (output exists) of 3" in err

    def test_multipage_tiff_is_noted(self, tmp_path: Path, worker: list[str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
        src, out = tmp_path / "in", tmp_path / "out"
        src.mkdir()
        pages = [Image.new("RGB", (40, 30), (v, v // 2, v // 3)) for v in (30, 60)]
        pages[0].save(src / "scan.tif", save_all=True, append_images=pages[1:])
        code = main(["batch", str(src), str(out), "-q", *worker[:4]])
        err = capsys.readouterr().err
        assert code == 0, err
        assert "scan.tif: only the first of its 2 pages is enhanced" in err
        with Image.open(out / "scan_enhanced.tif") as done:
            assert done.n_frames == 1

    def test_cli_usage_errors(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        src = tmp_path / "in"
        _photos(src, 1)
        assert main(["batch", str(src), str(src / "out")]) == 2
        assert "inside the input folder" in capsys.readouterr().err
        assert main(["batch", str(src), str(tmp_path / "o"), "--pattern", "x"]) == 2
        assert main(["batch", str(tmp_path / "none"), str(tmp_path / "o")]) == 2
        assert not (src / "out").exists()

    def test_pause_resume_cancel_and_continue(self, tmp_path: Path, worker: list[str]) -> None:
        src, out = tmp_path / "in", tmp_path / "out"
        _photos(src, 6)
        seen: list[BatchProgress] = []
        runner: BatchRunner

        def progress(p: BatchProgress) -> None:
            seen.append(p)
            if p.current is not None and p.current.name == "p01.png" and not runner.paused \
                    and not any(s.paused for s in seen):
                runner.pause()

        runner = BatchRunner(_opts(src, out), start_args=worker, progress=progress)
        result: list[Any] = []
        thread = threading.Thread(target=lambda: result.append(runner.run()))
        thread.start()
        _wait(lambda: any(s.paused for s in seen))
        paused_at = seen[-1].done
        time.sleep(0.5)
        assert seen[-1].paused and seen[-1].done == paused_at == 2  # p00 and p01 finished
        runner.cancel()  # cancel while paused: stops without another file
        thread.join(30)
        summary = result[0]
        assert summary.cancelled and len(summary.enhanced) == 2 and summary.remaining == 4
        assert "start it again to continue" in summary.headline()
        rest = BatchRunner(_opts(src, out), start_args=worker).run()
        assert len(rest.enhanced) == 4 and len(rest.already_done) == 2 and rest.complete

    def test_brightness_reaches_the_worker(self, tmp_path: Path, worker: list[str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
        """Outputs at ``--brightness 1`` are the worker's answers at brightness 1, not 0's.

        (Lossless PNGs, compared bit for bit with the same worker asked directly. The
        tiny test model has random weights, so *brighter* is not what it does: that is
        the trained model's behaviour, checked by the enhancer's tests.)"""
        src, dark, bright = tmp_path / "in", tmp_path / "b0", tmp_path / "b1"
        src.mkdir()
        photos = [write_image(src / "a.png", tw.dark_image(40, 56, np.uint16, seed=1)),
                  write_image(src / "b.png", tw.dark_image(40, 56, np.uint8, seed=2))]
        assert BatchRunner(_opts(src, dark), start_args=worker).run().complete
        code = main(["batch", str(src), str(bright), "-q", "--brightness", "1", *worker[:4]])
        assert code == 0, capsys.readouterr().err
        assert next(iter_journal(bright / JOURNAL_NAME))["brightness"] == 1.0
        assert next(iter_journal(dark / JOURNAL_NAME))["brightness"] == 0.0
        client = WorkerClient(start_args=worker)
        try:
            for photo in photos:
                pixels = read_image(photo).pixels
                at_0 = read_image(dark / f"{photo.stem}_enhanced.png").pixels
                at_1 = read_image(bright / f"{photo.stem}_enhanced.png").pixels
                np.testing.assert_array_equal(at_0, client.enhance(pixels, 1.0))
                np.testing.assert_array_equal(at_1, client.enhance(pixels, 1.0, brightness=1.0))
                assert at_1.dtype == pixels.dtype and not np.array_equal(at_0, at_1)
        finally:
            client.close()

    def test_cancel_in_flight_is_redone_next_time(self, tmp_path: Path, worker: list[str]) -> None:
        src, out = tmp_path / "in", tmp_path / "out"
        src.mkdir()
        write_image(src / "big.png", tw.dark_image(480, 640, seed=3))
        runner = BatchRunner(_opts(src, out, tile_size=136), start_args=worker,
                             progress=lambda p: runner.cancel() if p.tile else None)
        summary = runner.run()
        assert summary.cancelled and not summary.enhanced
        assert not (out / "big_enhanced.png").exists()
        assert plan(_opts(src, out)).unfinished[0].key == "big.png"


# --------------------------------------------------------------------------- fakes


class _Fake:
    """A client whose ``enhance`` runs ``behaviour`` (no worker)."""

    def __init__(self, behaviour: Callable[[NDArray[Any]], NDArray[Any]]) -> None:
        self.behaviour = behaviour
        self.notices: list[str] = []

    def enhance(self, image: NDArray[Any], *a: Any, **kw: Any) -> NDArray[Any]:
        return self.behaviour(image)

    def close(self) -> None:
        pass


def test_worker_dying_twice_fails_that_file_and_goes_on(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    _photos(src, 3)
    made: list[int] = []
    calls: list[int] = []

    def behaviour(image: NDArray[Any]) -> NDArray[Any]:
        calls.append(1)
        if len(calls) in (2, 3):  # p01.png: the worker dies on it, and on the retry
            raise WorkerError("worker_died", "the worker (pid 1) stopped while handling this "
                              "request")
        return image

    def factory() -> _Fake:
        made.append(1)
        return _Fake(behaviour)

    summary = BatchRunner(_opts(src, out), client_factory=factory).run()
    assert len(summary.enhanced) == 2 and [f.key for f in summary.failures] == ["p01.png"]
    assert "stopped while handling" in summary.failures[0].reason
    assert summary.retried == 1 and len(made) == 3  # first, the retry, then a fresh one


def test_worker_that_cannot_start_stops_the_batch(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    _photos(src, 3)

    def factory() -> _Fake:
        raise WorkerError("no_model", "the worker is not running and could not be started: "
                          "no weights; pass --weights")

    summary = BatchRunner(_opts(src, out), client_factory=factory).run()
    assert summary.stopped and "--weights" in summary.stopped
    assert not summary.failures and not summary.enhanced and summary.remaining == 3
    ok = BatchRunner(_opts(src, out), client_factory=lambda: _Fake(lambda a: a)).run()
    assert len(ok.enhanced) == 3


def test_second_batch_into_same_folder_is_refused(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    _photos(src, 2)
    gate = threading.Event()
    release = threading.Event()

    def slow(image: NDArray[Any]) -> NDArray[Any]:
        gate.set()
        release.wait(10)
        return image

    first = threading.Thread(target=BatchRunner(
        _opts(src, out), client_factory=lambda: _Fake(slow)).run)
    first.start()
    assert gate.wait(10)
    with pytest.raises(BatchError, match="another batch"):
        BatchRunner(_opts(src, out), client_factory=lambda: _Fake(lambda a: a)).run()
    release.set()
    first.join(10)


def _wait(cond: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_environment_is_private() -> None:
    assert "enhance-low-light" not in os.environ.get("XDG_RUNTIME_DIR", "")
