"""Per-server settings of a shared studio: the host key, the join code, limits, the export root.

Kept in `<runs>/.studio/server.json` (mode 0600), written by the launcher (`python -m app.shared.serve`, what
`make app` starts) or, when the app is started some other way, on the first page view. Only hashes of
the host key and the join code are stored; the plain values are printed once on the server's console
(as Jupyter prints its token). A key or code typed in a browser is compared with `hmac.compare_digest`
on the hashes (constant time). The host may change the limits and reveal the class board's answer key
from the app; the CLI on the server's machine is always host and never asks. No Streamlit here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any

from learngene.runlog import atomic_write_json, read_json

STUDIO_DIR = ".studio"
SETTINGS_FILE = "server.json"
MAX_LIMIT = 50  # the largest per-person or server limit the host can set


@dataclasses.dataclass
class Limits:
    """How many jobs may be live (running + queued).

    Attributes:
        running: jobs one person may have working at once.
        queued: jobs one person may have waiting beyond those.
        server: live jobs of everyone together.
    """

    running: int = 1
    queued: int = 2
    server: int = 12

    @property
    def per_person(self) -> int:
        return self.running + self.queued

    @classmethod
    def from_dict(cls, data: Any, fallback: Limits | None = None) -> Limits:
        base = dataclasses.asdict(fallback or cls())
        if isinstance(data, dict):
            for key in base:
                value = data.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_LIMIT:
                    base[key] = value
        return cls(**base)


def studio_dir(runs_dir: str | os.PathLike) -> Path:
    return Path(runs_dir) / STUDIO_DIR


def settings_path(runs_dir: str | os.PathLike) -> Path:
    return studio_dir(runs_dir) / SETTINGS_FILE


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def matches(given: Any, stored_digest: Any) -> bool:
    """True when `given` is the secret whose digest is stored (constant-time comparison)."""
    if not isinstance(given, str) or not given or not isinstance(stored_digest, str) or not stored_digest:
        return False
    return hmac.compare_digest(digest(given.strip()), stored_digest)


def is_loopback(address: str | None) -> bool:
    """True when a server bound to `address` can be reached from this machine only."""
    address = (address or "").strip().strip("[]")
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # "" or "0.0.0.0" or a host name: every interface or another machine


def read(runs_dir: str | os.PathLike) -> dict[str, Any]:
    try:
        data = read_json(settings_path(runs_dir), default={})
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write(runs_dir: str | os.PathLike, data: dict[str, Any]) -> None:
    path = settings_path(runs_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(path.parent, 0o700)
    atomic_write_json(path, data)
    os.chmod(path, 0o600)


def new_secrets(runs_dir: str | os.PathLike, join: bool = True) -> dict[str, str]:
    """Make a new host key (and join code) and store their hashes; returns the plain values to print."""
    data = read(runs_dir)
    out = {"host_key": secrets.token_urlsafe(24)}
    data["host_key_sha256"] = digest(out["host_key"])
    if join:
        out["join_code"] = secrets.token_urlsafe(9)
        data["join_code_sha256"] = digest(out["join_code"])
    else:
        data.pop("join_code_sha256", None)
    write(runs_dir, data)
    return out


def limits(runs_dir: str | os.PathLike) -> Limits:
    return Limits.from_dict(read(runs_dir).get("limits"))


def person_limits(runs_dir: str | os.PathLike, pub: str) -> Limits:
    """The limits of one person: the server's, or what the host gave them."""
    data = read(runs_dir)
    base = Limits.from_dict(data.get("limits"))
    raised = (data.get("person_limits") or {}).get(pub)
    return Limits.from_dict(raised, fallback=base) if isinstance(raised, dict) else base


def set_person_limits(runs_dir: str | os.PathLike, pub: str, running: int, queued: int) -> Limits:
    data = read(runs_dir)
    people = dict(data.get("person_limits") or {})
    people[pub] = {"running": int(running), "queued": int(queued)}
    data["person_limits"] = people
    write(runs_dir, data)
    return person_limits(runs_dir, pub)


def set_flag(runs_dir: str | os.PathLike, name: str, value: Any) -> None:
    data = read(runs_dir)
    data[name] = value
    write(runs_dir, data)


def flag(runs_dir: str | os.PathLike, name: str, default: Any = None) -> Any:
    return read(runs_dir).get(name, default)


def inside(root: str | os.PathLike, text: str) -> Path:
    """`text` (a folder name, or a path) as a folder inside `root`; `ConfigError` when it would lead outside.

    Relative names are taken under `root`; an absolute path is accepted only when it already lies inside it.
    Links are resolved first, so a link inside `root` that points outside is refused too.
    """
    from learngene.errors import ConfigError

    text = (text or "").strip()
    if not text or "\0" in text:
        raise ConfigError("name a folder for the export")
    base = Path(root).resolve()
    target = (base / text).resolve()  # an absolute `text` replaces `base` here
    if target != base and base not in target.parents:
        raise ConfigError(f"exports go into folders inside {base}; {text!r} is outside it")
    return target
