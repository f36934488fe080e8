#!/bin/sh
# Runs INSIDE the GIMP chroot under xvfb-run (tests/test_gimp.py): starts GIMP's GUI on
# $IMAGE with the batch command $GIMP_BATCH_CODE (tests/gimp/gui_undo.py), presses OK in
# the filter's dialog, waits until the filter has run, sends one Ctrl+Z to the image
# window with xdotool, and quits GIMP. $WORK is the folder shared with the host; a
# screenshot of the dialog is left there (dialog.png). Exit status 0 when every key
# could be sent.
# Every wait below is bounded and ends early when GIMP has exited, so that a failure is
# reported at once with GIMP's log instead of running into the test's time limit.

# The X server may answer a moment after xvfb-run starts this script on a loaded machine
# (GIMP then fails with "Cannot open display"): wait for it first.
i=0
until xdotool getdisplaygeometry >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -ge 300 ]; then echo "the X display '$DISPLAY' did not answer in 60 s"; exit 1; fi
    sleep 0.2
done

gimp-3.0 -n -d -f --batch-interpreter=python-fu-eval -b "$GIMP_BATCH_CODE" "$IMAGE" \
    >"$WORK/gimp-gui.out" 2>&1 &
gimp_pid=$!
status=0

gimp_alive() { kill -0 "$gimp_pid" 2>/dev/null; }

find_window() {  # find_window PATTERN: the first visible window whose title matches
    for w in $(xdotool search --onlyvisible --name "." 2>/dev/null); do
        case "$(xdotool getwindowname "$w" 2>/dev/null)" in $1) echo "$w"; return 0 ;; esac
    done
    return 1
}

screenshot() {
    python3 - "$1" <<'PY'
import sys
import gi
gi.require_version("Gdk", "3.0")
from gi.repository import Gdk
root = Gdk.get_default_root_window()
Gdk.pixbuf_get_from_window(root, 0, 0, root.get_width(), root.get_height()).savev(
    sys.argv[1], "png", [], [])
PY
}

i=0
until dialog=$(find_window "Enhance Low Light") || [ $i -ge 600 ] || ! gimp_alive; do
    sleep 0.2; i=$((i + 1))
done
if [ -n "$dialog" ]; then
    sleep 1
    screenshot "$WORK/dialog.png" || true
    timeout 20 xdotool windowfocus --sync "$dialog" && xdotool key --clearmodifiers Return
    sleep 1
    if find_window "Enhance Low Light" >/dev/null; then
        timeout 20 xdotool windowfocus --sync "$dialog" && xdotool key --clearmodifiers alt+o
    fi
else
    if gimp_alive; then echo "the filter's dialog did not appear"; else echo "GIMP exited"; fi
    status=1
fi

i=0
while [ ! -f "$WORK/filtered" ] && [ $i -lt 900 ] && gimp_alive; do sleep 0.2; i=$((i + 1)); done
name=$(basename "$IMAGE" | sed 's/\.[^.]*$//')
if window=$(find_window "*\\[$name\\]*"); then
    echo "image window $window: $(xdotool getwindowname "$window")"
    timeout 20 xdotool windowfocus --sync "$window" && sleep 0.3 \
        && xdotool key --clearmodifiers ctrl+z || status=1
else
    echo "no image window among:"
    for w in $(xdotool search --onlyvisible --name "."); do xdotool getwindowname "$w"; done
    status=1
fi
touch "$WORK/undo-sent"
i=0
while [ ! -f "$WORK/gui.json" ] && [ $i -lt 300 ] && gimp_alive; do sleep 0.2; i=$((i + 1)); done
kill "$gimp_pid" 2>/dev/null
i=0
while gimp_alive && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
kill -9 "$gimp_pid" 2>/dev/null
wait "$gimp_pid" 2>/dev/null
exit $status
