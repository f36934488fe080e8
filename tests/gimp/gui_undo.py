# Runs INSIDE GIMP 3 with its GUI (under Xvfb), started by tests/gimp/gui_undo.sh with
# the variables WORK and PROC. Runs the filter interactively on the image opened on the
# command line (its dialog is confirmed by gui_undo.sh), signals the script
# (WORK/filtered), waits until it has pressed Ctrl+Z in the image window
# (WORK/undo-sent), and dumps the pixels before, after and after the undo.
# ruff: noqa
import json
import os
import time

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp


def _dump(image, name):
    layer = image.get_layers()[0]
    rect = Gegl.Rectangle.new(0, 0, layer.get_width(), layer.get_height())
    data = layer.get_buffer().get(rect, 1.0, "R'G'B' u8", Gegl.AbyssPolicy.CLAMP)
    with open(os.path.join(WORK, name), "wb") as f:
        f.write(bytes(data))


def main():
    result = {}
    image = Gimp.get_images()[0]
    _dump(image, "gui.before")
    proc = Gimp.get_pdb().lookup_procedure(PROC)
    config = proc.create_config()
    config.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", image.get_selected_drawables())
    status = proc.run(config).index(0)  # returns once the dialog's OK is pressed
    result["status"] = status.value_nick
    Gimp.displays_flush()
    _dump(image, "gui.after")
    with open(os.path.join(WORK, "filtered"), "w") as f:
        f.write("1")
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(WORK, "undo-sent")) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # let GIMP handle the key press
    _dump(image, "gui.undone")
    result["undo_sent"] = os.path.exists(os.path.join(WORK, "undo-sent"))
    with open(os.path.join(WORK, "gui.json"), "w") as f:
        json.dump(result, f)


main()
