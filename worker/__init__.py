"""The background worker: one process per user that keeps the model loaded.

* :mod:`worker.protocol` -- the wire protocol (the only code both sides share; no torch);
* :mod:`worker.client` -- the client library used by the CLI, the panel and GIMP (no torch,
  no Qt);
* :mod:`worker.server` -- the worker process (torch, imported when it runs);
* :mod:`worker.cli` -- ``lowlight worker start|stop|status|log``.

Importing this package imports nothing else.
"""
