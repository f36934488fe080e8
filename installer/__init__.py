"""``lowlight install`` / ``lowlight uninstall``: the GIMP 3 plug-in and a desktop entry.

:mod:`installer.gimp` finds GIMP 3 and its plug-in folder, :mod:`installer.desktop` makes
the Linux desktop entry and icon, :mod:`installer.manifest` records what was written so
that uninstall removes exactly that, and :mod:`installer.cli` is the command.
"""
