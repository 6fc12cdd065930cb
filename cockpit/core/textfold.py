"""Fold text to the plain form the heuristic classifier reads: NFKC, no invisible characters, and every
character that looks like an ASCII letter or digit (Cyrillic е, Greek ο, fullwidth ｐ ...) replaced by it.

A request written with look-alike letters must classify exactly as the same request typed in ASCII, so the
rules that keep destructive or wide work away from "small" cannot be dodged by spelling. The look-alike table
is Unicode's confusables list (UTS #39) as shipped by `confusable_homoglyphs`.
"""

from __future__ import annotations

import functools
import unicodedata

__all__ = ["fold"]


@functools.cache
def _table() -> dict[int, str]:
    # Imported on the first fold, not with the module: its data and what it imports cost an idle daemon MBs.
    from confusable_homoglyphs import utils as confusable_data

    table: dict[int, str] = {}
    for char, homoglyphs in confusable_data.load("confusables.json").items():
        if len(char) != 1 or char.isascii():
            continue
        ascii_forms = [h["c"] for h in homoglyphs if h["c"].isascii() and h["c"].strip()]
        if ascii_forms:
            # A letter rather than a digit or sign where the glyph could be either (ⅼ: l, not 1 or I).
            table[ord(char)] = min(ascii_forms, key=lambda c: (len(c), not c.isalpha(), not c.islower()))
    return table


def fold(text: str) -> str:
    """`text` in NFKC, without format characters (zero-width spaces, bidi marks), look-alikes made ASCII."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return text.translate(_table())
