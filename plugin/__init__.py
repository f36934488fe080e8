"""plugin package (filled by a later issue)."""
