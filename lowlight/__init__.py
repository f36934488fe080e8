"""Enhance Low Light: command line and shared, torch-free helpers.

This package is deliberately free of torch, ZeroMQ and Qt at import time so that
``lowlight --help`` is instant and every client can import it cheaply.
"""

__version__ = "0.1.0"
