# Runs INSIDE GIMP 3 (python-fu-eval batch interpreter), started by tests/test_gimp.py
# with the variables WORK (a folder shared with the host) and PROC (the procedure name).
#
# For each case of WORK/cases.json: make an image of the given precision and type, load
# the host's raw pixels, optionally make a (feathered) selection, run the filter through
# the PDB, and dump the pixels before/after in the image's own format and as sRGB float,
# the selection mask, and the procedure's status and message into WORK/results.json.
# Every check is made on the host (numpy); this script only records.
# ruff: noqa
import json
import os
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp


def _dump(path, buffer, rect, fmt):
    data = buffer.get(rect, 1.0, fmt, Gegl.AbyssPolicy.CLAMP)
    with open(path, "wb") as f:
        f.write(bytes(data))


def _run_case(case, pdb):
    w, h = case["width"], case["height"]
    lx, ly, lw, lh = case["layer"]
    base = Gimp.ImageBaseType.RGB if case["base"] == "rgb" else Gimp.ImageBaseType.GRAY
    precision = getattr(Gimp.Precision, case["precision"])
    image = Gimp.Image.new_with_precision(w, h, base, precision)
    kind = {("rgb", False): Gimp.ImageType.RGB_IMAGE, ("rgb", True): Gimp.ImageType.RGBA_IMAGE,
            ("gray", False): Gimp.ImageType.GRAY_IMAGE,
            ("gray", True): Gimp.ImageType.GRAYA_IMAGE}[(case["base"], case["alpha"])]
    layer = Gimp.Layer.new(image, case["name"], lw, lh, kind, 100, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    layer.set_offsets(lx, ly)
    rect = Gegl.Rectangle.new(0, 0, lw, lh)
    buffer = layer.get_buffer()
    with open(os.path.join(WORK, case["input"]), "rb") as f:
        buffer.set(rect, case["in_format"], f.read())
    buffer.flush()
    if case.get("selection"):
        x, y, sw, sh = case["selection"]["rect"]
        image.select_rectangle(Gimp.ChannelOps.REPLACE, x, y, sw, sh)
        if case["selection"].get("feather"):
            Gimp.Selection.feather(image, case["selection"]["feather"])
        _dump(os.path.join(WORK, case["name"] + ".mask"),
              image.get_selection().get_buffer(), Gegl.Rectangle.new(0, 0, w, h), "Y float")
    _, ix, iy, iw, ih = layer.mask_intersect()
    prefix = os.path.join(WORK, case["name"])
    _dump(prefix + ".before", layer.get_buffer(), rect, case["in_format"])
    proc = pdb.lookup_procedure(PROC)
    config = proc.create_config()
    config.set_property("run-mode", getattr(Gimp.RunMode, case.get("run_mode", "NONINTERACTIVE")))
    config.set_property("image", image)
    config.set_core_object_array("drawables", [layer])
    if "strength" in case:
        config.set_property("strength", float(case["strength"]))
    if "auto" in case:
        config.set_property("auto", bool(case["auto"]))
    if "brightness" in case:
        config.set_property("brightness", float(case["brightness"]))
    result = proc.run(config)
    status = result.index(0)
    message = result.index(1) if result.length() > 1 else None
    layer = image.get_layers()[0]
    _dump(prefix + ".after", layer.get_buffer(), rect, case["in_format"])
    _dump(prefix + ".after-float", layer.get_buffer(), rect, case["float_format"])
    out = {
        "status": status.value_nick,
        "message": message if isinstance(message, str) else None,
        "precision_after": image.get_precision().value_name,
        "has_alpha_after": layer.has_alpha(),
        "layers": len(image.get_layers()),
        "intersect": [ix, iy, iw, ih],
    }
    image.delete()
    return out


def main():
    with open(os.path.join(WORK, "cases.json")) as f:
        cases = json.load(f)
    pdb = Gimp.get_pdb()
    results = {"procedure_found": pdb.lookup_procedure(PROC) is not None,
               "gimp_version": Gimp.version(), "cases": {}}
    for case in cases:
        try:
            results["cases"][case["name"]] = _run_case(case, pdb)
        except Exception:
            results["cases"][case["name"]] = {"status": "batch-crash",
                                              "message": traceback.format_exc()}
    with open(os.path.join(WORK, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


main()
