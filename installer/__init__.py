"""installer package (filled by a later issue)."""
