"""Text from images and URLs made safe to show: control and bidi characters escaped.

A leaf module (no rich, no other layer), so the CLI's fastest paths (``vhd convert
--in-place``) and every formatter share one definition.
"""

from __future__ import annotations

import re

# Control characters (C0 but tab and newline, DEL, C1), what XML 1.0 cannot hold at all, and
# the bidirectional controls (embeddings, overrides, isolates, marks) that make a terminal show
# text in another order than it is written ("Trojan Source").
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                          "\u2066-\u2069\ud800-\udfff\ufffe\uffff]")


def printable(text: str) -> str:
    r"""``text`` with control and bidi characters shown as ``\xNN`` (``\uNNNN`` above 0xFF).

    Messages and evidence quote files from the image, which anyone may have written: an escape
    sequence must not reach a terminal (it can hide text, set the title, write the clipboard
    with OSC 52), a bidi override must not reorder what the reader sees, and XML 1.0 (JUnit)
    cannot hold most controls at all. JSON output keeps the exact value instead.
    """
    return _UNPRINTABLE.sub(_escape_char, text)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
