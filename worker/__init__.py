"""worker package (filled by a later issue)."""
