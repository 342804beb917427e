"""Text from users made safe to print or render.

Job names, tags and upload names are typed by someone; printed as they are, an ANSI escape
(`\\x1b[2J`, `\\x1b]0;title\\x07`) would drive the terminal of whoever runs `jobs list`, and a C1 or
bidi control would scramble a page. `printable` removes escape sequences whole, then every other
control character (C0, DEL, C1, Unicode bidi overrides), and turns line breaks and tabs into spaces;
with `keep_lines=True` (a run's log) it keeps newlines and tabs, and a carriage return becomes a
newline (a progress bar redrawn with `\r` shows as successive lines instead of overwriting one).
"""

from __future__ import annotations

import re

# ESC or the 8-bit CSI (0x9b) / OSC (0x9d) introducers with the sequence they start:
# CSI params + final byte, OSC/DCS/PM/APC text up to BEL or ST, or a single two-byte escape.
_ESCAPE = (
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c{eol}]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
_ESCAPE_RE = re.compile(_ESCAPE.format(eol=""))
# In a log, an unterminated OSC/DCS string ends at the line break: it must not swallow the lines after it.
_LINE_ESCAPE_RE = re.compile(_ESCAPE.format(eol="\n\r"))
_SPACE_RE = re.compile(r"[\t\n\r\v\f]+")
_NEWLINE_RE = re.compile(r"\r\n?")
_LINE_SPACE_RE = re.compile(r"[\v\f]+")
_LINE_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object, limit: int | None = None, *, keep_lines: bool = False) -> str:
    """`text` without escape sequences or control characters (line breaks become spaces).

    Args:
        text: any value; non-strings are converted with `str`.
        limit: cut to at most this many characters (ending with "…") when given.
        keep_lines: keep newlines and tabs (for multi-line text such as a log); `\r\n` and a lone
            `\r` become a newline.
    """
    if keep_lines:
        out = _LINE_ESCAPE_RE.sub("", str(text))
        out = _LINE_CONTROL_RE.sub("", _LINE_SPACE_RE.sub(" ", _NEWLINE_RE.sub("\n", out)))
    else:
        out = _ESCAPE_RE.sub("", str(text))
        out = _CONTROL_RE.sub("", _SPACE_RE.sub(" ", out))
    if limit is not None and len(out) > limit:
        out = out[: max(limit - 1, 0)] + "…"
    return out
