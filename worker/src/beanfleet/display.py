"""Untrusted bytes (job bodies, from any producer) made safe to print on a terminal.

A body can hold ESC sequences that retitle the window or clear the screen, CR or BS that
overwrite what was printed before it (a row's ID column: the operator kicks the wrong job),
BEL, or Unicode format characters that reorder the line (bidi overrides).  Shown, every such
character becomes a visible escape: ``\\x1b``, ``\\r``, ``\\u202e``.  Bytes that are not
UTF-8 show as ``\\xff``.  A backslash is left as it is (JSON bodies stay readable), so the
shown text is for reading, not for getting the bytes back: ``--json`` has them exactly.
"""

from __future__ import annotations

import re
import unicodedata

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
# Everything outside printable ASCII is looked at; only the characters below are escaped.
_SUSPECT = re.compile(r"[^\x20-\x7e]")
# Controls (C0, DEL, C1), format characters (bidi overrides, zero-width), line and paragraph
# separators, and lone surrogates.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def is_unsafe(char: str) -> bool:
    """True for a character that must not reach a terminal as it is."""
    return unicodedata.category(char) in _ESCAPED_CATEGORIES


def for_terminal(data: bytes | str, *, keep: str = "") -> str:
    """``data`` (bytes are decoded as UTF-8) with every unsafe character escaped, except
    those in ``keep`` (``"\\n"``: a multi-line body keeps its lines)."""
    text = data.decode("utf-8", "backslashreplace") if isinstance(data, bytes) else data

    def replace(match: re.Match[str]) -> str:
        char = match.group()
        return _escape(char) if char not in keep and is_unsafe(char) else char

    return _SUSPECT.sub(replace, text)


def json_safe(encoded: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``, which escapes C0 but not DEL,
    C1 or format characters) with those as ``\\uXXXX`` too: the same value, safe to print.
    They can only be inside strings, where the escape means the same character."""

    def replace(match: re.Match[str]) -> str:
        char = match.group()
        if not is_unsafe(char):
            return char
        code = ord(char)
        if code < 0x10000:
            return f"\\u{code:04x}"
        code -= 0x10000  # beyond the BMP: JSON spells it as a surrogate pair
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"

    return _SUSPECT.sub(replace, encoded)
