#!/usr/bin/env python3
# Enhance Low Light: GIMP 3 plug-in "Filters > Enhance > Enhance Low Light...".
#
# Installed by `lowlight install` as plug-ins/enhance_low_light/enhance_low_light.py with
# enhance_low_light.json beside it (the project's Python and root folder). It runs in
# GIMP's own Python, so it imports nothing from the project at import time and needs
# only GIMP's GObject Introspection bindings.
#
# This file is not type-checked (there are no gi stubs for GIMP); ruff checks it.
# mypy: ignore-errors
"""Enhance Low Light for GIMP 3.

How it talks to the enhancer (the background worker of the project):

* direct mode: when GIMP's Python can import numpy, pyzmq and msgpack, and the project's
  ``worker`` package imports from the recorded project root, ``worker.client`` runs in
  this process;
* bridge mode (the usual case: GIMP's bundled Python has neither numpy nor pyzmq): the
  plug-in starts ``<project python> -m plugin.gimp_bridge`` and passes a JSON header and
  the float32 pixels over its stdin, reading progress and the result from its stdout
  (protocol in ``plugin/gimp_bridge.py``). Closing the pipe cancels the request.

``LOWLIGHT_GIMP_MODE=direct|bridge|auto`` (default ``auto``: direct when possible) forces
one. Inside the Flatpak sandbox the bridge runs on the host with ``flatpak-spawn --host``.

Pixels are read as sRGB-encoded float ("R'G'B'A float", "Y'A float", without "A" for
layers without alpha) whatever the image's precision and linear/perceptual setting, so
8, 16 and 32-bit images keep their precision and the network sees the values it was
trained on. Only the selection's bounding box (plus ``CONTEXT`` pixels of context,
clamped to the layer) is sent; the result of the bounding box is written through the
shadow buffer and merged with ``merge_shadow``, which applies the (feathered) selection
and makes the change one undo step. Nothing is written before every result is in hand,
so any failure leaves the image untouched.

Cancel: GIMP's progress bar offers a cancel button in the GUI; GIMP then ends the
plug-in process (the image is untouched because nothing was written yet) and the bridge,
seeing its stdin close, cancels the worker request. Batch runs have no cancel.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GimpUi, GLib, GObject  # noqa: E402

PROC_NAME = "plug-in-enhance-low-light"
PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
SETTINGS_FILE = os.path.join(PLUGIN_DIR, "enhance_low_light.json")
BRIDGE_PROTOCOL = 1
CONTEXT = 48  # pixels of context around the selection's bounding box
UNSET_PYTHON_VARS = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE",
                     "PYTHONUSERBASE", "__PYVENV_LAUNCHER__")


def _(message):
    return GLib.dgettext(None, message)


class Failure(Exception):
    """A failure with a sentence telling the user what to do."""

    def __init__(self, message, code="error"):
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- settings


def load_settings():
    """The installer's settings: {"python", "project_root", "version", "flatpak"}."""
    try:
        with open(SETTINGS_FILE, encoding="utf-8") as f:
            settings = json.load(f)
    except FileNotFoundError:
        raise Failure(
            f"Enhance Low Light is not set up: its settings file {SETTINGS_FILE} is missing. Run "
            "`lowlight install` in a terminal and restart GIMP.",
            "not_installed") from None
    except (OSError, ValueError) as exc:
        raise Failure(
            f"Enhance Low Light cannot read its settings ({SETTINGS_FILE}: {exc}). Run "
            "`lowlight install` again and restart GIMP.", "not_installed") from None
    for key in ("python", "project_root"):
        if not isinstance(settings.get(key), str):
            raise Failure(
                f"Enhance Low Light's settings lack '{key}'. Run `lowlight install` again and "
                "restart GIMP.", "not_installed")
    return settings


def in_flatpak():
    return os.path.exists("/.flatpak-info")


def host_command(settings, args):
    """``args`` as a command for the project's Python (on the host when sandboxed)."""
    command = [settings["python"], *args]
    if settings.get("flatpak") or in_flatpak():
        command = ["flatpak-spawn", "--host", "--directory=" + settings["project_root"],
                   *command]
    return command


def child_env():
    env = dict(os.environ)
    for name in UNSET_PYTHON_VARS:
        env.pop(name, None)
    return env


def _popen_flags():
    if sys.platform.startswith("win"):
        return {"creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {}


# --------------------------------------------------------------------------- engines


class DirectEngine:
    """``worker.client`` in GIMP's own Python."""

    mode = "direct"

    def __init__(self, settings):
        import msgpack  # noqa: F401  - GIMP's own, before the project's path is added
        import numpy
        import zmq  # noqa: F401

        root = settings["project_root"]
        if root not in sys.path:
            sys.path.append(root)
        from worker import client as worker_client

        # A worker started from here must run with the project's Python, not GIMP's.
        for name in UNSET_PYTHON_VARS:
            os.environ.pop(name, None)
        os.environ["LOWLIGHT_WORKER_PYTHON"] = settings["python"]
        self.np = numpy
        self.wc = worker_client
        self.settings = settings
        self.client = None

    def enhance(self, data, width, height, channels, strength, crop, progress,
                brightness=0.0):
        np = self.np
        image = np.frombuffer(data, dtype=np.float32).reshape(height, width, channels)
        try:
            if self.client is None:
                self.client = self.wc.WorkerClient(
                    autostart=True, start_args=worker_args(self.settings))
            result = self.client.enhance(image, strength, progress=progress,
                                         brightness=brightness)
        except self.wc.WorkerError as exc:
            raise Failure(worker_message(exc), getattr(exc, "code", "error")) from None
        x, y, w, h = crop
        return np.ascontiguousarray(result[y:y + h, x:x + w], dtype=np.float32).tobytes()

    def close(self):
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # closing is best effort
                pass
            self.client = None


def worker_args(settings):
    """Arguments for a worker this plug-in starts (``lowlight install --weights/--device``)."""
    args = settings.get("worker_args") or []
    return [str(a) for a in args] if isinstance(args, list) else []


def worker_message(exc):
    """A worker error as a sentence for a GIMP message (capitalised, with a full stop)."""
    text = str(exc).strip() or "The enhancer failed"
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


class BridgeEngine:
    """``<project python> -m plugin.gimp_bridge`` over pipes."""

    mode = "bridge"

    def __init__(self, settings):
        self.settings = settings
        self.proc = None
        self.stderr = None

    def _start(self):
        python = self.settings["python"]
        if not (self.settings.get("flatpak") or in_flatpak()) and not os.path.exists(python):
            raise Failure(
                f"The Python that Enhance Low Light was installed with ({python}) is gone. Run "
                "`lowlight install` again with the project's Python and restart GIMP."
                , "not_installed")
        self.stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                host_command(self.settings, ["-m", "plugin.gimp_bridge"]),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                cwd=self.settings["project_root"], env=child_env(), **_popen_flags())
        except OSError as exc:
            raise Failure(
                f"Enhance Low Light cannot start its helper ({python}: "
                f"{exc.strerror or exc}). Run `lowlight install` again and restart GIMP.",
                "start_failed") from None

    def _helper_died(self):
        detail = ""
        if self.stderr is not None:
            try:
                self.stderr.seek(0)
                lines = self.stderr.read().decode("utf-8", "replace").strip().splitlines()
                detail = lines[-1] if lines else ""
            except OSError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
        return Failure(
            "Enhance Low Light's helper stopped unexpectedly{}. Check that `{} -m lowlight "
            "--version` works in a terminal, run `lowlight install` again, and restart GIMP."
            .format(f" ({detail})" if detail else "", self.settings["python"]),
            "worker_died")

    def enhance(self, data, width, height, channels, strength, crop, progress,
                brightness=0.0):
        if self.proc is None:
            self._start()
        header = {"op": "enhance", "protocol": BRIDGE_PROTOCOL, "width": width,
                  "height": height, "channels": channels, "strength": strength,
                  "brightness": brightness, "crop": list(crop),
                  "start_args": worker_args(self.settings), "nbytes": len(data)}
        try:
            self.proc.stdin.write(json.dumps(header).encode("utf-8") + b"\n")
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except OSError:
            raise self._helper_died() from None
        out = self.proc.stdout
        while True:
            line = out.readline()
            if not line:
                raise self._helper_died()
            try:
                message = json.loads(line)
            except ValueError:
                raise self._helper_died() from None
            event = message.get("event")
            if event == "progress":
                if progress is not None:
                    progress(message.get("done", 0), message.get("total", 0))
            elif event == "error":
                raise Failure(worker_message(message.get("message", "")),
                              message.get("code", "error"))
            elif event == "result":
                nbytes = int(message["nbytes"])
                payload = out.read(nbytes)
                if len(payload) != nbytes:
                    raise self._helper_died()
                return payload

    def close(self):
        if self.proc is None:
            return
        try:
            self.proc.stdin.write(b'{"op": "bye"}\n')
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc = None


def make_engine(settings):
    """The engine for ``LOWLIGHT_GIMP_MODE`` (``auto``: direct when it imports)."""
    mode = os.environ.get("LOWLIGHT_GIMP_MODE", "auto").strip().lower() or "auto"
    if mode not in ("auto", "direct", "bridge"):
        raise Failure(f"LOWLIGHT_GIMP_MODE must be auto, direct or bridge, not {mode!r}."
                      , "bad_request")
    if mode == "bridge" or (mode == "auto" and (settings.get("flatpak") or in_flatpak())):
        return BridgeEngine(settings)
    try:
        return DirectEngine(settings)
    except Exception as exc:  # any import problem means: use the bridge
        if mode == "direct":
            raise Failure(
                f"Direct mode is not available in GIMP's Python ({type(exc).__name__}: "
                f"{exc}); unset LOWLIGHT_GIMP_MODE to use the helper.",
                "start_failed") from None
        return BridgeEngine(settings)


def _log(text):
    path = os.environ.get("LOWLIGHT_GIMP_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text + "\n")


# --------------------------------------------------------------------------- pixels


def babl_format(drawable):
    """(format name, channels) in sRGB-encoded float for the drawable's layout."""
    alpha = drawable.has_alpha()
    if drawable.is_rgb():
        return ("R'G'B'A float", 4) if alpha else ("R'G'B' float", 3)
    return ("Y'A float", 2) if alpha else ("Y' float", 1)


class Job:
    """One drawable: the rectangle to change and the padded one the network sees."""

    def __init__(self, drawable):
        self.drawable = drawable
        self.format, self.channels = babl_format(drawable)
        ok, x, y, w, h = drawable.mask_intersect()
        self.empty = not ok or w <= 0 or h <= 0
        self.rect = (x, y, w, h)
        width, height = drawable.get_width(), drawable.get_height()
        x0, y0 = max(0, x - CONTEXT), max(0, y - CONTEXT)
        x1, y1 = min(width, x + w + CONTEXT), min(height, y + h + CONTEXT)
        self.padded = (x0, y0, x1 - x0, y1 - y0)
        self.crop = (x - x0, y - y0, w, h)
        self.result = None

    def read(self):
        x, y, w, h = self.padded
        buffer = self.drawable.get_buffer()
        data = buffer.get(Gegl.Rectangle.new(x, y, w, h), 1.0, self.format,
                          Gegl.AbyssPolicy.CLAMP)
        return bytes(data)

    def write(self):
        x, y, w, h = self.rect
        shadow = self.drawable.get_shadow_buffer()
        shadow.set(Gegl.Rectangle.new(x, y, w, h), self.format, self.result)
        shadow.flush()
        self.drawable.merge_shadow(True)
        self.drawable.update(x, y, w, h)


def enhance_drawables(image, drawables, strength, engine, interactive, brightness=0.0):
    """Compute every result first, then write them all as one undo step.

    ``strength``: 0..1 or "auto"; ``brightness``: -1..1 (how dark the network takes the
    photo to be; see ``hybridnet.contract``).
    """
    jobs = []
    for drawable in drawables:
        if Gimp.Item.is_group(drawable):
            raise Failure(
                "Enhance Low Light works on layers, not on layer groups: select the layers "
                f"inside the group ('{drawable.get_name()}').", "bad_request")
        job = Job(drawable)
        if not job.empty:
            jobs.append(job)
    if not jobs:
        return 0
    total_pixels = sum(j.padded[2] * j.padded[3] for j in jobs)
    done_pixels = 0
    Gimp.progress_init(_("Enhancing low light…"))
    try:
        for job in jobs:
            weight = job.padded[2] * job.padded[3] / total_pixels
            base = done_pixels / total_pixels

            def progress(done, total, base=base, weight=weight):
                if total:
                    Gimp.progress_update(min(1.0, base + weight * done / total))

            data = job.read()
            pw, ph = job.padded[2], job.padded[3]
            job.result = engine.enhance(data, pw, ph, job.channels, strength, job.crop,
                                        progress, brightness)
            expected = job.rect[2] * job.rect[3] * job.channels * 4
            if len(job.result) != expected:
                raise Failure("The enhancer sent a result of the wrong size; run "
                              "`lowlight install` again and restart GIMP.", "bad_request")
            done_pixels += pw * ph
            Gimp.progress_update(done_pixels / total_pixels)
    finally:
        engine.close()
    image.undo_group_start()
    try:
        for job in jobs:
            job.write()
    finally:
        image.undo_group_end()
    Gimp.progress_update(1.0)
    Gimp.progress_end()
    if interactive:
        Gimp.displays_flush()
    return len(jobs)


# --------------------------------------------------------------------------- panel


def open_panel(image, settings):
    """Save a copy of the image and open it in the desktop panel (a detached process)."""
    folder = os.path.join(GLib.get_user_cache_dir(), "enhance-low-light")
    os.makedirs(folder, exist_ok=True)
    now = time.time()
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        try:
            if name.startswith("gimp-") and now - os.path.getmtime(path) > 86400:
                os.remove(path)
        except OSError:
            pass
    path = os.path.join(folder, f"gimp-{os.getpid()}-{image.get_id()}.tif")
    copy = image.duplicate()
    try:
        copy.merge_visible_layers(Gimp.MergeType.CLIP_TO_IMAGE)
        from gi.repository import Gio

        Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, copy, Gio.File.new_for_path(path), None)
    finally:
        copy.delete()
    log = open(os.path.join(folder, "panel.log"), "ab")
    kwargs = dict(stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                  cwd=settings["project_root"], env=child_env())
    if sys.platform.startswith("win"):
        kwargs["creationflags"] = (getattr(subprocess, "DETACHED_PROCESS", 0)
                                   | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0))
    else:
        kwargs["start_new_session"] = True
    proc = subprocess.Popen(host_command(settings, ["-m", "lowlight", "panel", path]),
                            **kwargs)
    try:
        code = proc.wait(timeout=1.5)
    except subprocess.TimeoutExpired:
        return None
    if code != 0:
        return ("The panel did not start (exit status {}; see {}). Check that `{} -m lowlight "
                "panel` works in a terminal.".format(code, log.name, settings["python"]))
    return None


def _panel_button(dialog, image):
    from gi.repository import Gtk

    def clicked(_button):
        try:
            problem = open_panel(image, load_settings())
        except Failure as exc:
            problem = str(exc)
        except Exception as exc:  # shown to the user
            problem = f"The panel could not be opened: {exc}"
        if problem:
            Gimp.message(problem)

    button = Gtk.Button.new_with_mnemonic(_("Open in the Enhance Low Light _panel…"))
    button.set_tooltip_text(_("Save a copy of this image and open it in the desktop panel, "
                              "with a large before/after preview"))
    button.connect("clicked", clicked)
    dialog.get_content_area().pack_end(button, False, False, 6)
    button.show()


# --------------------------------------------------------------------------- procedure


def run(procedure, run_mode, image, drawables, config, data):
    interactive = run_mode == Gimp.RunMode.INTERACTIVE
    if not drawables:
        return procedure.new_return_values(
            Gimp.PDBStatusType.CALLING_ERROR,
            GLib.Error(_("Select a layer to enhance.")))
    if interactive:
        GimpUi.init(PROC_NAME)
        dialog = GimpUi.ProcedureDialog.new(procedure, config, _("Enhance Low Light"))
        dialog.get_spin_scale("strength", 1.0)  # a slider rather than a bare number
        dialog.get_spin_scale("brightness", 1.0)
        dialog.fill(["strength", "auto", "brightness"])
        dialog.set_sensitive("strength", True, config, "auto", True)
        _panel_button(dialog, image)
        ok = dialog.run()
        dialog.destroy()
        if not ok:
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    strength = "auto" if config.get_property("auto") else \
        max(0.0, min(1.0, config.get_property("strength") / 100.0))
    brightness = max(-1.0, min(1.0, config.get_property("brightness")))
    try:
        settings = load_settings()
        engine = make_engine(settings)
        _log("mode={} numpy_loaded={}".format(engine.mode, "numpy" in sys.modules))
        _log(f"strength={strength} brightness={brightness}")
        count = enhance_drawables(image, drawables, strength, engine, interactive,
                                  brightness)
    except Failure as exc:
        _log(f"error code={exc.code} message={exc}")
        Gimp.progress_end()
        return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR,
                                           GLib.Error(str(exc)))
    except Exception as exc:  # the user gets a message, GIMP keeps running
        _log(f"crash {type(exc).__name__}: {exc}")
        Gimp.progress_end()
        return procedure.new_return_values(
            Gimp.PDBStatusType.EXECUTION_ERROR,
            GLib.Error(f"Enhance Low Light failed unexpectedly ({type(exc).__name__}: "
                       f"{exc}); the image was not changed. Please report this."))
    _log(f"enhanced {count} drawable(s)")
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


class EnhanceLowLight(Gimp.PlugIn):
    def do_query_procedures(self):
        return [PROC_NAME]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        procedure.set_image_types("RGB*, GRAY*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE
                                       | Gimp.ProcedureSensitivityMask.DRAWABLES)
        procedure.set_menu_label(_("Enhance _Low Light..."))
        procedure.add_menu_path("<Image>/Filters/Enhance")
        procedure.set_documentation(
            _("Brighten a dark photo with a neural network"),
            _("Enhances the selected layers (inside the selection, if any) with the deep "
              "hybrid network of Ren et al. (2019): brightens, denoises and keeps edges. "
              "'strength' (0-100 %) blends with the original; 'auto' picks it from the "
              "exposure. 'brightness' (-1 to 1) makes the result brighter (+) or darker "
              "(-) by changing what the network sees. Runs in the Enhance Low Light "
              "worker, started when needed."),
            name)
        procedure.set_attribution("Enhance Low Light contributors",
                                  "Enhance Low Light contributors", "2025")
        procedure.add_double_argument("strength", _("_Strength (%)"),
                                      _("How much of the enhanced image to use, 0-100 %"),
                                      0.0, 100.0, 100.0, GObject.ParamFlags.READWRITE)
        procedure.add_boolean_argument("auto", _("_Auto strength"),
                                       _("Choose the strength from the photo's exposure"),
                                       False, GObject.ParamFlags.READWRITE)
        procedure.add_double_argument(
            "brightness", _("_Brightness"),
            _("How bright the result is: 0 the automatic exposure, +0.5 one stop brighter, "
              "-0.5 one darker, +-1 two. Unlike strength, which only blends toward the "
              "original, this changes what the network is given, so the network runs anew"),
            -1.0, 1.0, 0.0, GObject.ParamFlags.READWRITE)
        return procedure


if __name__ == "__main__":
    Gimp.main(EnhanceLowLight.__gtype__, sys.argv)
