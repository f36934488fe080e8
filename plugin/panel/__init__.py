"""The desktop panel (``lowlight panel``): PyQt6, no torch; pixels go through the worker.

* :mod:`plugin.panel.app` -- the command and the application (palette, HiDPI, settings);
* :mod:`plugin.panel.main_window` -- the window: Photo tab, menus, status, saving;
* :mod:`plugin.panel.viewer` -- the before/after view (split or toggle, zoom, pan);
* :mod:`plugin.panel.preview` -- screen previews re-blended as the strength slider moves;
* :mod:`plugin.panel.worker_link` -- the worker client in a thread, with explicit states;
* :mod:`plugin.panel.batch_tab` -- the Batch tab over :mod:`plugin.batch`;
* :mod:`plugin.panel.theme`, :mod:`plugin.panel.tasks` -- palettes; background calls.

Importing this package imports nothing else.
"""
