"""The batch engine: enhance every photo of a folder, resumably. No Qt, no torch.

Used by the desktop panel's Batch tab and by ``lowlight batch`` (:mod:`plugin.batch_cmd`);
pixels go through the background worker (:mod:`worker.client`).

Rules a user can rely on
------------------------
* **The input folder is never written to** unless asked (``allow_input_folder``): an
  output folder equal to the input folder or inside it is refused with a
  :class:`BatchError`. Even when allowed, an output never replaces its input.
* **An existing output is never overwritten**: it is counted as "already done" (when this
  batch wrote it) or "skipped: exists" (when it did not), and left alone.
* **Outputs are written atomically** (:func:`hybridnet.imageio.write_image`): a crash or a
  kill never leaves half a file under the output name.
* **Resumable**: progress is kept in a journal in the output folder (see below). Running
  the same batch again after a stop, a crash, a killed worker or a closed panel skips
  every finished file and redoes only the one that was in flight.
* **One failure never stops the batch**: a broken file is listed with its reason (one
  line, as :class:`hybridnet.imageio.ImageFileError` and
  :class:`worker.client.WorkerError` already phrase them) and the next file starts. A
  worker that dies mid-file is restarted and the file retried once; when the worker
  cannot be started at all, the batch stops (every file would fail) and says why.

Brightness
----------
``brightness`` (-1..1, default 0) is sent with every photo: each is enhanced as if
darkened by gamma 3 + brightness (:mod:`hybridnet.contract`), so 1 gives brighter results
and -1 darker ones; ``strength`` then blends each result with its original as usual.

Naming
------
``pattern`` names each output without its suffix: ``{name}`` is the input's stem,
``{ext}`` its suffix without the dot, ``{strength}`` ``auto`` or the percentage
(``80``). The default ``{name}_enhanced`` turns ``IMG_1.jpg`` into ``IMG_1_enhanced.jpg``.
The suffix is the input's (``format="same"``: same format, bit depth, EXIF and ICC) or the
chosen format's. With ``recursive``, sub-folders are mirrored in the output folder.

Journal
-------
``OUT_DIR/.lowlight-batch.jsonl``: append-only JSON lines, flushed and fsync'ed per
finished file; a torn last line (power cut) is ignored::

    {"event": "batch", "v": 1, "time": T, "input": "/abs/in", "recursive": false,
     "strength": 0.8, "brightness": 0.0, "format": "same", "pattern": "{name}_enhanced"}
    {"event": "start", "src": "sub/a.jpg", "out": "sub/a_enhanced.jpg", "time": T}
    {"event": "done", "src": "sub/a.jpg", "out": "sub/a_enhanced.jpg", "time": T, "seconds": 1.3}
    {"event": "failed", "src": "b.png", "reason": "the file is truncated ...", "time": T}
    {"event": "end", "time": T, "enhanced": 11, "failed": 1, "cancelled": false}

Paths are relative (POSIX) to the input and output folders. On a new run an output that
exists and was journalled by a batch (``start`` or ``done``: the write is atomic, so an
existing file is complete) is "already done"; a ``start`` without an output is the
unfinished file and is redone (its stale temporary file, if any, is removed); failed
files are tried again. A second batch writing into the same folder at the same time is
refused (the journal is locked while a batch runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import string
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Literal, Protocol

from numpy.typing import NDArray

Strength = float | Literal["auto"]

#: The journal's file name in the output folder.
JOURNAL_NAME: Final = ".lowlight-batch.jsonl"
JOURNAL_VERSION: Final = 1
DEFAULT_PATTERN: Final = "{name}_enhanced"
#: Output formats: ``same`` keeps each input's format; the others force a suffix.
FORMATS: Final[dict[str, str | None]] = {
    "same": None, "jpeg": ".jpg", "png": ".png", "tiff": ".tif", "webp": ".webp", "bmp": ".bmp",
}
PATTERN_FIELDS: Final = ("name", "ext", "strength")
#: Worker errors after which the same file is retried once with a fresh connection
#: (and, for a dead worker, a freshly started one).
RETRY_CODES: Final = frozenset({"worker_died", "shutting_down", "busy"})
#: Worker errors that would fail every file: the batch stops and can be resumed.
FATAL_CODES: Final = frozenset({"start_failed", "no_model", "version_mismatch", "not_running"})


class BatchError(Exception):
    """The batch cannot start (folders, pattern, a batch already running); one sentence."""


class EnhanceClient(Protocol):
    """What the engine needs of :class:`worker.client.WorkerClient`."""

    notices: list[str]

    def enhance(
        self,
        image: NDArray[Any],
        strength: Strength = 1.0,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | Callable[[], bool] | None = None,
        tile_size: int | None = None,
        brightness: float = 0.0,
    ) -> NDArray[Any]: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- options/plan


@dataclass(frozen=True)
class BatchOptions:
    """What to enhance and where to write it.

    Attributes:
        input_dir: folder of photos.
        output_dir: where the results go (created when missing).
        recursive: include sub-folders (mirrored in ``output_dir``).
        strength: 0..1, or ``"auto"`` (from each photo's exposure).
        output_format: a key of :data:`FORMATS` (``"same"`` keeps each input's format).
        pattern: output name without suffix (see the module docstring).
        allow_input_folder: permit ``output_dir`` to be ``input_dir`` or inside it.
        tile_size: maximum tile side sent to the worker (``None``: the worker decides).
        brightness: -1..1, how dark the network takes each photo to be: 0 as it is, 1
            brighter results, -1 darker (see the module docstring).
    """

    input_dir: Path
    output_dir: Path
    recursive: bool = False
    strength: Strength = 1.0
    output_format: str = "same"
    pattern: str = DEFAULT_PATTERN
    allow_input_folder: bool = False
    tile_size: int | None = None
    brightness: float = 0.0

    def check(self) -> None:
        """Raise :class:`BatchError` for options no file could be processed with."""
        if not self.input_dir.is_dir():
            what = "does not exist" if not self.input_dir.exists() else "is not a folder"
            raise BatchError(f"the input folder {self.input_dir} {what}; choose a folder of "
                             "photos")
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise BatchError(f"the output {self.output_dir} is a file, not a folder; choose a "
                             "folder")
        if self.output_format not in FORMATS:
            raise BatchError(f"unknown output format {self.output_format!r}; use one of "
                             f"{', '.join(FORMATS)}")
        if self.strength != "auto" and not (
            isinstance(self.strength, int | float) and 0.0 <= float(self.strength) <= 1.0
        ):
            raise BatchError(f"strength must be from 0 to 1 or 'auto', got {self.strength!r}")
        check_brightness(self.brightness)
        check_pattern(self.pattern)
        if not self.allow_input_folder and inside(self.output_dir, self.input_dir):
            same = self.output_dir.resolve() == self.input_dir.resolve()
            raise BatchError(
                f"the output folder {self.output_dir} is "
                f"{'the input folder' if same else 'inside the input folder'}; choose another "
                "folder, or allow writing into the input folder"
            )

    def journal_header(self) -> dict[str, Any]:
        return {"event": "batch", "v": JOURNAL_VERSION, "time": time.time(),
                "input": str(self.input_dir.resolve()), "recursive": self.recursive,
                "strength": self.strength, "brightness": float(self.brightness),
                "format": self.output_format,
                "pattern": self.pattern}


def check_brightness(brightness: object) -> float:
    """``brightness`` as a float in [-1, 1], or :class:`BatchError` saying what is allowed
    (the rule of :func:`hybridnet.contract.check_brightness`)."""
    from hybridnet.contract import check_brightness as check
    from hybridnet.errors import InvalidImageError

    try:
        return check(brightness)
    except InvalidImageError as exc:
        raise BatchError(str(exc)) from None


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or below it (after resolving links)."""
    p, f = path.resolve(), folder.resolve()
    return p == f or f in p.parents


def check_pattern(pattern: str) -> None:
    """Raise :class:`BatchError` unless ``pattern`` is a usable output name pattern."""
    if not pattern.strip():
        raise BatchError("the file name pattern is empty; use e.g. {name}_enhanced")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None]
    except ValueError as exc:
        raise BatchError(f"the file name pattern {pattern!r} is malformed ({exc}); use e.g. "
                         "{name}_enhanced") from None
    unknown = [f for f in fields if f not in PATTERN_FIELDS]
    if unknown:
        raise BatchError(f"the file name pattern uses {{{unknown[0]}}}; only "
                         f"{', '.join('{' + f + '}' for f in PATTERN_FIELDS)} are known")
    if "name" not in fields:
        raise BatchError("the file name pattern must contain {name}, or every output would "
                         "get the same name")
    if "/" in pattern or "\\" in pattern or pattern.startswith("."):
        raise BatchError("the file name pattern must be a plain name (no folders, not "
                         "starting with a dot)")


def strength_label(strength: Strength) -> str:
    """``auto`` or the percentage (``80``), as ``{strength}`` is filled in."""
    return "auto" if strength == "auto" else f"{round(float(strength) * 100):d}"


def output_name(source: Path, options: BatchOptions) -> str:
    """The output file name of ``source`` (pattern plus suffix)."""
    suffix = FORMATS[options.output_format] or source.suffix
    stem = options.pattern.format(name=source.stem, ext=source.suffix[1:],
                                  strength=strength_label(options.strength))
    return stem + suffix


def discover(options: BatchOptions) -> list[Path]:
    """The photos of the input folder, sorted; hidden files and folders are left out,
    and so is the output folder when it lies inside the input folder."""
    from hybridnet.imageio import SUPPORTED_SUFFIXES

    root = options.input_dir
    out = options.output_dir.resolve()
    found: list[Path] = []

    def wanted(path: Path) -> bool:
        return (not path.name.startswith(".") and path.suffix.lower() in SUPPORTED_SUFFIXES
                and path.is_file())

    if not options.recursive:
        return sorted(p for p in root.iterdir() if wanted(p))
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and ((here / d).resolve() != out or out == root.resolve()))
        found.extend(here / f for f in sorted(files) if wanted(here / f))
    return found


@dataclass(frozen=True)
class BatchItem:
    """One input and where its output goes."""

    source: Path
    target: Path
    key: str  # the source relative to the input folder, POSIX
    out_key: str  # the target relative to the output folder, POSIX


@dataclass(frozen=True)
class Failure:
    """A file that was not enhanced, and why (one line)."""

    source: Path
    reason: str
    key: str = ""

    def __str__(self) -> str:
        return f"{self.key or self.source}: {self.reason}"


@dataclass
class BatchPlan:
    """What a run will do.

    Attributes:
        todo: files to enhance, in order.
        done: files whose output this batch (or an earlier run of it) already wrote.
        existing: files whose output name exists but was not written by a batch: left
            alone, never overwritten.
        refused: files that cannot be done with these options (their output would replace
            an input, or collide with another file's output).
        resumed: the output folder holds the journal of an earlier run.
        unfinished: the file an earlier run was working on when it stopped (if any).
        failed_before: files to do that failed in the last run (tried again).
    """

    todo: list[BatchItem] = field(default_factory=list)
    done: list[BatchItem] = field(default_factory=list)
    existing: list[BatchItem] = field(default_factory=list)
    refused: list[Failure] = field(default_factory=list)
    resumed: bool = False
    unfinished: list[BatchItem] = field(default_factory=list)
    #: what differs between the last run's settings and these (empty: nothing), e.g.
    #: ``["strength 1.0 -> 0.5"]``: its finished files were made with the old ones
    changed_settings: list[str] = field(default_factory=list)
    failed_before: list[BatchItem] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.todo) + len(self.done) + len(self.existing) + len(self.refused)


def _make_folder(folder: Path) -> None:
    """Create an output sub-folder (a batch with sub-folders mirrors them), or say why not."""
    from hybridnet.imageio import ImageFileError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageFileError(f"cannot create the output folder {folder} "
                             f"({exc.strerror or exc}); check its permissions") from None


#: Journal header keys whose change makes different output files.
SETTINGS_THAT_CHANGE_PIXELS: Final = ("strength", "brightness", "format")


def plan(options: BatchOptions) -> BatchPlan:
    """Discover the photos and decide, for each, whether it is to do, done or refused.

    Raises:
        BatchError: see :meth:`BatchOptions.check`.
    """
    options.check()
    state = read_journal(options.output_dir / JOURNAL_NAME)
    sources = discover(options)
    in_root, out_root = options.input_dir.resolve(), options.output_dir.resolve()
    items: list[BatchItem] = []
    for source in sources:
        rel = source.relative_to(options.input_dir)
        out_rel = rel.with_name(output_name(source, options))
        items.append(BatchItem(source, options.output_dir / out_rel, rel.as_posix(),
                               out_rel.as_posix()))
    # Files that are outputs (of this batch, or named like an output of another input)
    # are not inputs: re-running a batch into its own input folder must not enhance its
    # own results.
    outputs = {out_root / i.out_key for i in items if out_root / i.out_key != in_root / i.key}
    outputs |= {out_root / k for k in state.outputs}
    inputs = {in_root / i.key for i in items} - outputs
    result = BatchPlan(resumed=state.exists)
    if state.header is not None:
        now = options.journal_header()
        for key in SETTINGS_THAT_CHANGE_PIXELS:
            before, after = state.header.get(key), now.get(key)
            if before is not None and before != after:
                result.changed_settings.append(f"{key} {before} -> {after}")
    claimed: dict[Path, BatchItem] = {}
    for item in items:
        src = in_root / item.key
        if src not in inputs:
            continue
        dst = out_root / item.out_key
        if dst in inputs:
            result.refused.append(Failure(item.source, f"its output {item.out_key} would "
                                          "replace an input; choose another name pattern or "
                                          "output folder", item.key))
            continue
        if dst in claimed:
            result.refused.append(Failure(item.source, f"its output {item.out_key} is also the "
                                          f"output of {claimed[dst].key}; choose an output "
                                          "format 'same as input' or a pattern with {ext}",
                                          item.key))
            continue
        claimed[dst] = item
        if item.target.exists():
            (result.done if item.out_key in state.outputs else result.existing).append(item)
        else:
            result.todo.append(item)
            if item.out_key in state.started:
                result.unfinished.append(item)
            if item.key in state.failed:
                result.failed_before.append(item)
    return result


# --------------------------------------------------------------------------- journal


@dataclass
class JournalState:
    """What an earlier run's journal says."""

    exists: bool = False
    outputs: set[str] = field(default_factory=set)  # started or done: written if it exists
    started: set[str] = field(default_factory=set)  # started, neither done nor failed
    failed: dict[str, str] = field(default_factory=dict)  # src -> reason (last run)
    header: dict[str, Any] | None = None


def read_journal(path: Path) -> JournalState:
    """Parse a journal; unreadable or torn lines are skipped."""
    state = JournalState()
    try:
        fh = open(path, encoding="utf-8", errors="replace")
    except OSError:
        return state
    state.exists = True
    with fh:
        for line in fh:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            event, out, src = entry.get("event"), entry.get("out"), entry.get("src")
            if event == "batch":
                state.header = entry
            elif event == "start" and isinstance(out, str):
                state.outputs.add(out)
                state.started.add(out)
            elif event in ("done", "failed"):
                if isinstance(out, str):
                    state.outputs.add(out)
                    state.started.discard(out)
                if event == "failed" and isinstance(src, str):
                    state.failed[src] = str(entry.get("reason", ""))
    return state


class Journal:
    """The append-only journal of a running batch, locked against a second batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def open(self, header: dict[str, Any]) -> None:
        """Open for appending and take the lock.

        Raises:
            BatchError: another batch writes into this folder, or it is not writable.
        """
        try:
            fh = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise BatchError(f"cannot write into the output folder {self.path.parent} "
                             f"({exc.strerror or exc}); choose another folder") from None
        if not _try_lock(fh):
            fh.close()
            raise BatchError(f"another batch is writing into {self.path.parent}; wait for it "
                             "to finish or choose another output folder")
        self._fh = fh
        self.write(header)

    def write(self, entry: dict[str, Any], *, sync: bool = False) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._fh.flush()
        if sync:
            with contextlib.suppress(OSError):
                os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fh.fileno())
            self._fh.close()  # releases the lock
            self._fh = None


def _try_lock(fh: IO[str]) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, still append-only
        return True
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class BatchProgress:
    """A progress report (called before each file, after it, and on pause).

    Attributes:
        done: files finished so far, of any outcome (already done ones included).
        total: files in the batch.
        current: the file being worked on (``None`` between files).
        eta_s: estimated seconds left (``None`` until one file was enhanced).
        enhanced, skipped, failed: counts by outcome (skipped: done before or existing).
        paused: the batch waits for :meth:`BatchRunner.resume`.
        tile: ``(done, total)`` tiles of the current file, when the worker tiles it.
        failures: every failure so far (refused files first), one line each.
    """

    done: int
    total: int
    current: Path | None
    eta_s: float | None
    enhanced: int
    skipped: int
    failed: int
    paused: bool = False
    tile: tuple[int, int] | None = None
    failures: tuple[Failure, ...] = ()


@dataclass
class BatchSummary:
    """The outcome of :meth:`BatchRunner.run`."""

    total: int = 0
    enhanced: list[Path] = field(default_factory=list)
    already_done: list[Path] = field(default_factory=list)
    existing: list[Path] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    cancelled: bool = False
    stopped: str | None = None  # why the batch stopped early (the worker cannot run)
    retried: int = 0
    notices: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def complete(self) -> bool:
        """Every file has its output (none failed, nothing left to do)."""
        return not (self.failures or self.cancelled or self.stopped)

    @property
    def remaining(self) -> int:
        return self.total - len(self.enhanced) - len(self.already_done) - len(
            self.existing) - len(self.failures)

    def headline(self) -> str:
        """One sentence: counts and what to do next."""
        parts = [f"{len(self.enhanced)} enhanced"]
        if self.already_done:
            parts.append(f"{len(self.already_done)} already done")
        if self.existing:
            parts.append(f"{len(self.existing)} skipped (output exists)")
        if self.failures:
            parts.append(f"{len(self.failures)} failed")
        text = f"{', '.join(parts)} of {self.total} files"
        if self.stopped:
            text += f"; stopped: {self.stopped}"
        elif self.cancelled:
            text += f"; stopped with {self.remaining} to go (start it again to continue)"
        return text


ProgressFn = Callable[[BatchProgress], None]


class BatchRunner:
    """Runs one batch; :meth:`pause`, :meth:`resume` and :meth:`cancel` may be called from
    any thread while :meth:`run` works in another.

    Args:
        options: the batch.
        client_factory: makes a worker client (default: :class:`worker.client.WorkerClient`
            with ``start_args`` and ``runtime_dir``, started when none runs). Called again
            after the worker died.
        progress: called with a :class:`BatchProgress` from the thread running :meth:`run`.
        start_args, runtime_dir: for the default client factory.
    """

    def __init__(
        self,
        options: BatchOptions,
        *,
        client_factory: Callable[[], EnhanceClient] | None = None,
        progress: ProgressFn | None = None,
        start_args: Sequence[str] = (),
        runtime_dir: Path | None = None,
    ) -> None:
        self.options = options
        self._factory = client_factory or _default_factory(start_args, runtime_dir)
        self._progress = progress
        self._client: EnhanceClient | None = None
        self._cancel = threading.Event()
        self._running = threading.Event()
        self._running.set()

    # ------------------------------------------------------------------ control

    def pause(self) -> None:
        """Stop after the current file until :meth:`resume`."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def cancel(self) -> None:
        """Stop now: the file in flight is abandoned (and redone by the next run)."""
        self._cancel.set()
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # ------------------------------------------------------------------ run

    def run(self, batch_plan: BatchPlan | None = None) -> BatchSummary:
        """Do the batch; returns when it is finished, cancelled or stopped.

        Raises:
            BatchError: the batch cannot start (see :func:`plan`, :meth:`Journal.open`).
        """
        from hybridnet.imageio import (
            ImageFileError,
            read_image,
            remove_linked_temporaries,
            write_image,
        )
        from worker.client import Cancelled, WorkerError

        opts = self.options
        try:
            opts.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BatchError(f"cannot create the output folder {opts.output_dir} "
                             f"({exc.strerror or exc}); choose another folder") from None
        the_plan = batch_plan or plan(opts)
        journal = Journal(opts.output_dir / JOURNAL_NAME)
        journal.open(opts.journal_header())
        start = time.monotonic()
        summary = BatchSummary(total=the_plan.total,
                               already_done=[i.target for i in the_plan.done],
                               existing=[i.target for i in the_plan.existing],
                               failures=list(the_plan.refused))
        if the_plan.changed_settings and the_plan.done:
            summary.notices.append(
                f"{len(the_plan.done)} files were made by an earlier run with other settings "
                f"({', '.join(the_plan.changed_settings)}) and were kept as they are; to "
                f"redo them with these settings, delete them from {opts.output_dir} (or "
                "choose a new output folder) and run the batch again")
        for item in the_plan.unfinished:
            _remove_stale_temporaries(item.target)
        for folder in {i.target.parent for i in (*the_plan.done, *the_plan.existing)}:
            remove_linked_temporaries(folder)  # a kill between link and unlink
        busy_s = 0.0
        timed = 0
        try:
            for item in the_plan.todo:
                if not self._wait_if_paused(summary):
                    break
                eta = busy_s / timed * (summary.remaining) if timed else None
                self._report(summary, item.source, eta)
                if item.target.exists():  # appeared meanwhile (another program)
                    summary.existing.append(item.target)
                    continue
                journal.write({"event": "start", "src": item.key, "out": item.out_key,
                               "time": time.time()})
                t0 = time.monotonic()
                try:
                    loaded = read_image(item.source)
                    summary.notices.extend(f"{item.source.name}: {n}" for n in loaded.notes)
                    result = self._enhance(loaded.pixels, item, summary, eta)
                    _make_folder(item.target.parent)  # sub-folders of --recursive mirrored
                    write_image(item.target, result, loaded.metadata, overwrite=False)
                except Cancelled:
                    summary.cancelled = True
                    break
                except WorkerError as exc:
                    if exc.code in FATAL_CODES:
                        summary.stopped = str(exc)
                        break
                    self._fail(journal, summary, item, str(exc))
                except FileExistsError:
                    summary.existing.append(item.target)
                except ImageFileError as exc:
                    self._fail(journal, summary, item, str(exc))
                except MemoryError:
                    self._fail(journal, summary, item, "not enough memory for this photo; "
                               "close other programs and run the batch again")
                except Exception as exc:  # one bad file must not stop the others
                    self._fail(journal, summary, item, f"{type(exc).__name__}: {exc}")
                else:
                    seconds = time.monotonic() - t0
                    journal.write({"event": "done", "src": item.key, "out": item.out_key,
                                   "time": time.time(), "seconds": round(seconds, 3)},
                                  sync=True)
                    summary.enhanced.append(item.target)
                    busy_s += seconds
                    timed += 1
            if self.cancelled:
                summary.cancelled = True
            summary.elapsed_s = time.monotonic() - start
            journal.write({"event": "end", "time": time.time(),
                           "enhanced": len(summary.enhanced), "failed": len(summary.failures),
                           "cancelled": summary.cancelled, "stopped": summary.stopped},
                          sync=True)
            self._report(summary, None, 0.0 if summary.remaining == 0 else None)
        finally:
            journal.close()
            self._drop_client()
        return summary

    def _enhance(
        self, pixels: NDArray[Any], item: BatchItem, summary: BatchSummary, eta: float | None
    ) -> NDArray[Any]:
        from worker.client import WorkerError

        def tiles(done: int, total: int) -> None:
            if total > 1:
                self._report(summary, item.source, eta, (done, total))

        for attempt in (0, 1):
            if self._client is None:
                self._client = self._factory()
            try:
                out = self._client.enhance(pixels, self.options.strength, progress=tiles,
                                           cancel=self._cancel,
                                           tile_size=self.options.tile_size,
                                           brightness=float(self.options.brightness))
            except WorkerError as exc:
                if exc.code not in RETRY_CODES or attempt or self.cancelled:
                    if exc.code in RETRY_CODES:
                        self._drop_client()
                    raise
                self._drop_client()  # a fresh connection; autostarts a new worker
                summary.retried += 1
                if exc.code == "busy":
                    time.sleep(1.0)
                continue
            for note in self._client.notices:
                if note not in summary.notices:
                    summary.notices.append(note)
            return out
        raise AssertionError("unreachable")  # pragma: no cover

    def _fail(self, journal: Journal, summary: BatchSummary, item: BatchItem,
              message: str) -> None:
        reason = _strip_prefix(message, item.source)
        summary.failures.append(Failure(item.source, reason, item.key))
        journal.write({"event": "failed", "src": item.key, "out": item.out_key,
                       "reason": reason, "time": time.time()}, sync=True)

    def _wait_if_paused(self, summary: BatchSummary) -> bool:
        """Block while paused; ``False`` when cancelled."""
        if not self._running.is_set() and not self.cancelled:
            self._report(summary, None, None, paused=True)
            while not self._running.wait(0.1):
                pass
        return not self.cancelled

    def _report(self, summary: BatchSummary, current: Path | None, eta: float | None,
                tile: tuple[int, int] | None = None, *, paused: bool = False) -> None:
        if self._progress is None:
            return
        skipped = len(summary.already_done) + len(summary.existing)
        done = len(summary.enhanced) + skipped + len(summary.failures)
        self._progress(BatchProgress(done, summary.total, current, eta,
                                     len(summary.enhanced), skipped, len(summary.failures),
                                     paused, tile, tuple(summary.failures)))

    def _drop_client(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None


def _default_factory(
    start_args: Sequence[str], runtime_dir: Path | None
) -> Callable[[], EnhanceClient]:
    def make() -> EnhanceClient:
        from worker.client import WorkerClient

        return WorkerClient(autostart=True, start_args=start_args, runtime_dir=runtime_dir)

    return make


def _strip_prefix(message: str, source: Path) -> str:
    """``"/x/a.png: truncated"`` -> ``"truncated"`` (the failure names the file itself)."""
    for prefix in (str(source), source.name):
        if message.startswith(prefix + ": "):
            return message[len(prefix) + 2:]
    return message


def _remove_stale_temporaries(target: Path) -> None:
    """Remove ``.NAME.tmp-*`` files an interrupted atomic write of ``target`` left."""
    with contextlib.suppress(OSError):
        for tmp in target.parent.glob(f".{_glob_escape(target.name)}.tmp-*"):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def iter_journal(path: Path) -> Iterator[dict[str, Any]]:
    """The journal's entries in order (for tests and tools); torn lines skipped."""
    try:
        fh = open(path, encoding="utf-8", errors="replace")
    except OSError:
        return
    with fh:
        for line in fh:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    yield entry
