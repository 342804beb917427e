"""Error text for the page: a short plain message, with the full detail kept for an expander.

Messages from the library and the workers are written for the command line: they name files by
their full server path, name options as CLI flags (`--n-way`), suggest `python -m learngene ...`
commands, and a worker's log may carry ANSI colour codes. `plain` turns such a text into what a
person reading the page needs: no escape codes or control characters, a file by its name, an
option by its words, no command lines, cut at a word boundary. No Streamlit here.
"""

from __future__ import annotations

import re
from typing import Any

from learngene.text import printable

SHORT = 220  # characters of a message shown in the page (the rest is in the details)

# Options as the CLI names them -> as the pages label them (others: the flag's words, e.g. "batch size").
FLAG_WORDS = {
    "n-way": "N-way", "k-shot": "K-shot", "lr": "learning rate", "wd": "weight decay", "lrs": "learning rates",
    "wds": "weight decays", "shots": "K shots", "run-dir": "run folder", "set": "setting", "out": "output file",
    "holdout-per-class": "held-out images per class", "pd-epochs": "pseudo-descendant epochs",
    "learngene": "learngene file", "journal-dir": "study journal folder",
}
_COMMAND_HINT_RE = re.compile(r"\s*[(\[][^()\[\]]*`[^`]*(?:python -m|learngene )[^`]*`[^()\[\]]*[)\]]")
_COMMAND_RE = re.compile(r"`[^`]*(?:python -m|\.venv/bin/)[^`]*`")
_PATH_RE = re.compile(r"(?<![\w.~])(?:~|\.{1,2})?(?:/[^\s/'\"`:,;()\[\]<>]+)+/?")
_FLAG_RE = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")
_SPACES_RE = re.compile(r"\s+")


def _path_name(match: re.Match) -> str:
    parts = [p for p in match.group(0).split("/") if p and p not in (".", "..", "~")]
    return parts[-1] if parts else match.group(0)


def cut(text: str, limit: int = SHORT) -> str:
    """`text` cut to at most `limit` characters at a word boundary, ending with "…" when cut."""
    if len(text) <= limit:
        return text
    head = text[: max(limit - 1, 1)]
    space = head.rfind(" ")
    if space >= limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:-(") + "…"


def plain(text: Any, limit: int | None = SHORT) -> str:
    """A message fit for the page: no escape codes, paths shown as file names, no CLI flags or commands,
    cut at a word boundary (when `limit` is given)."""
    out = printable(text)
    out = _COMMAND_HINT_RE.sub("", out)
    out = _COMMAND_RE.sub("the command line", out)
    out = _PATH_RE.sub(_path_name, out)
    out = _FLAG_RE.sub(lambda m: FLAG_WORDS.get(m.group(1), m.group(1).replace("-", " ")), out)
    out = _SPACES_RE.sub(" ", out).strip()
    return cut(out, limit) if limit else out


def detail(text: Any) -> str:
    """The full text for a details expander: every line kept, escape codes and control characters removed."""
    lines = str(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(printable(line) for line in lines).strip("\n")


def lines_from_end(text: str, limit: int = 4000) -> str:
    """The last whole lines of `text` within `limit` characters (a log tail not cut inside a line)."""
    if len(text) <= limit:
        return text
    tail = text[-limit:]
    newline = tail.find("\n")
    return tail[newline + 1:] if 0 <= newline < len(tail) - 1 else tail


def worker_error(log_tail: str | None) -> str | None:
    """The error line a worker printed last (`error: ...` from the CLI, or the exception of a traceback)."""
    if not log_tail:
        return None
    lines = [printable(line).strip() for line in str(log_tail).splitlines()]
    lines = [line for line in lines if line and not line.startswith("--- supervisor.log")]
    for line in reversed(lines):
        low = line.lower()
        if low.startswith("error:"):
            return line[len("error:"):].strip()
        if ": error: " in line and line.split(":", 1)[0].startswith(("learngene", "python")):  # argparse
            return line.split(": error: ", 1)[1].strip()
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b", line):
            return line
    return None


def run_problem(info: Any) -> str:
    """Why a run failed, diverged or is unreadable, in one plain sentence."""
    what = worker_error(getattr(info, "log_tail", None))
    reason = getattr(info, "reason", None) or ""
    if what and reason and what not in reason:
        text = f"{what} ({reason})" if len(reason) < 40 else what
    else:
        text = what or reason or f"the run {getattr(info, 'state', 'ended')}"
    return plain(text)


_MD_SPECIAL_RE = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=\"'&])")


def md(text: Any, limit: int | None = 200) -> str:
    """Text someone typed (a run's name, a display name) made inert inside Streamlit markdown: printable, and every
    markdown punctuation escaped, so `![x](http://…)` shows as those characters instead of fetching an image."""
    return _MD_SPECIAL_RE.sub(r"\\\1", printable(text, limit))
