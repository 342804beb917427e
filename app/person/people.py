"""Per-person state on a shared server: one small record per browser, bounded and expiring.

A web app is shared by nature, so the studio keeps three kinds of state apart:

- **per run** (`runs/<id>/`, the job store): visible to everyone, each run owned by whoever started it;
- **per person** (this module): what one browser chose (ancestry, layers, recipe, settings, watched and
  selected runs), its display name, and whether it joined or holds the host key;
- **per server** (`app.shared.server`): limits, the host key, the join code, the export root.

A browser is recognised by a random token kept in a cookie (`app.person.identity` sets it). The token itself
is a secret: only its hash, the person's *public id*, is written anywhere (the file name of the record
here, the `owner` of a run), so reading a run folder never lets anyone act as its owner. The store is
bounded: at most `max_entries` records of at most `max_bytes` each; records not used for `max_age_s`
expire, and past the bound the least recently used go first, so a client that invents tokens cannot
fill the disk. No Streamlit here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

from learngene.runlog import atomic_write_json
from learngene.text import printable

TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32,64}")
PUBLIC_RE = re.compile(r"[0-9a-f]{16}")
MAX_NAME = 40  # characters of a display name
DEFAULT_MAX_ENTRIES = 500
DEFAULT_MAX_BYTES = 64 * 1024
DEFAULT_MAX_AGE_S = 30 * 24 * 3600.0


def new_token() -> str:
    """A fresh browser token (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def valid_token(token: Any) -> bool:
    return isinstance(token, str) and TOKEN_RE.fullmatch(token) is not None


def public_id(token: str) -> str:
    """The person's public id: a hash of the secret token (16 hex characters)."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()[:16]


def default_name(pub: str) -> str:
    """`guest-7f3a`: the name a person has until they choose one."""
    return f"guest-{pub[:4]}"


def clean_name(name: Any) -> str:
    """A display name as stored and shown: printable, single-line, at most MAX_NAME characters."""
    return printable(name if isinstance(name, str) else "", MAX_NAME).strip()


class PersonStore:
    """Records of people, one JSON file each under `folder` (named by public id).

    Args:
        folder: where the records live (created on the first write).
        max_entries: records kept at most; past it the least recently used are dropped.
        max_bytes: the largest record; a bigger one is refused (`ValueError`) and not written.
        max_age_s: records not written for this long are dropped.
    """

    def __init__(self, folder: str | os.PathLike, max_entries: int = DEFAULT_MAX_ENTRIES,
                 max_bytes: int = DEFAULT_MAX_BYTES, max_age_s: float = DEFAULT_MAX_AGE_S):
        self.folder = Path(folder)
        self.max_entries, self.max_bytes, self.max_age_s = int(max_entries), int(max_bytes), float(max_age_s)

    def path(self, pub: str) -> Path:
        if not PUBLIC_RE.fullmatch(pub or ""):
            raise ValueError(f"not a public id: {pub!r}")
        return self.folder / f"{pub}.json"

    def load(self, pub: str) -> dict[str, Any]:
        """The record of `pub` ({} when there is none, it expired, or it is unreadable)."""
        path = self.path(pub)
        try:
            if path.stat().st_size > self.max_bytes or time.time() - path.stat().st_mtime > self.max_age_s:
                return {}
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, pub: str, record: dict[str, Any]) -> None:
        """Write the record of `pub` atomically; refuse one over `max_bytes`; keep the store in bounds."""
        path = self.path(pub)
        size = len(json.dumps(record, sort_keys=True, default=str).encode("utf-8"))
        if size > self.max_bytes:
            raise ValueError(f"a person's state is at most {self.max_bytes} bytes (this one is {size})")
        new = not path.exists()
        atomic_write_json(path, record)
        if new:
            self.prune()

    def prune(self) -> list[str]:
        """Drop expired records, then the least recently used beyond `max_entries`; returns their ids."""
        now, dated = time.time(), []
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return []
        for entry in entries:
            if not entry.name.endswith(".json") or not PUBLIC_RE.fullmatch(entry.name[:-5]):
                continue
            try:
                dated.append((entry.stat().st_mtime, entry.name[:-5]))
            except OSError:
                continue
        dated.sort(reverse=True)  # newest first
        drop = [pub for i, (mtime, pub) in enumerate(dated) if i >= self.max_entries or now - mtime > self.max_age_s]
        for pub in drop:
            self.path(pub).unlink(missing_ok=True)
        return drop

    def names(self) -> dict[str, str]:
        """Public id -> display name of every stored person (the default name where none was chosen)."""
        out = {}
        try:
            files = sorted(self.folder.glob("*.json"))
        except OSError:
            return out
        for file in files:
            pub = file.stem
            if PUBLIC_RE.fullmatch(pub):
                out[pub] = clean_name(self.load(pub).get("name")) or default_name(pub)
        return out
