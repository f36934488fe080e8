"""How the panel turns messages (errors, read notes, summaries) into sentences.

One place, so the status bar, banners and the batch tab word things alike.
"""

from __future__ import annotations

_END = (".", "!", "?", ")")


def sentence(text: str) -> str:
    """``text`` as a sentence: stripped, first letter capitalised, ending in punctuation.

    Only a lower-case first letter is changed, and not in a name spelt with a capital
    second letter ("iPhone"); nothing is added after ``.``, ``!``, ``?`` or a closing
    bracket. An empty message stays empty.
    """
    text = text.strip()
    if not text:
        return ""
    if text[0].islower() and not text[1:2].isupper():  # but "iPhone", "macOS" stay
        text = text[0].upper() + text[1:]
    return text if text.endswith(_END) else text + "."


def sentences(texts: list[str] | tuple[str, ...]) -> str:
    """Several messages as one paragraph of :func:`sentence` s (empty ones dropped)."""
    return " ".join(s for s in (sentence(t) for t in texts) if s)
