"""Helpers of tests/test_gimp.py: the host side (chroot.py) and scripts run inside GIMP."""
