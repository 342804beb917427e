"""Who is at this browser: their person record, whether they are the host, and the join gate.

A browser gets a random token in a cookie (`lg_person`, set by a small script the first time it
visits, read back from `st.context.cookies` on every later connection); the token names the
person's record in `app.person.people` by its hash. Links never carry it. Tests, where there is no browser,
put a token into `st.session_state[SESSION_TOKEN]` before the first run: the same token is the
same person.

The host is whoever opened the app with the host key (`?host=KEY`, printed on the server's console
by `python -m app.shared.serve`) or typed it in the sidebar. A server bound beyond loopback asks every new
person for the join code (`?join=CODE`, the console prints the join link) and shows nothing else
until it is given.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import streamlit as st

from app.person import people
from app.shared import config, server

COOKIE = "lg_person"
SESSION_TOKEN = "_lg_person_token"
_RECORD = "_lg_person_record"
COOKIE_MAX_AGE_S = 30 * 24 * 3600


@dataclasses.dataclass
class Person:
    """The person at this browser."""

    pub: str  # public id (hash of the browser's token): a run's `owner`
    name: str
    host: bool
    joined: bool


def store() -> people.PersonStore:
    return people.PersonStore(server.studio_dir(config.runs_dir()) / "people")


def all_names() -> dict[str, str]:
    """Public id -> display name of everyone with a record; read again only when a record was written (each write
    renames a file into the folder, which changes the folder's modification time)."""
    try:
        stamp = (store().folder / ".").stat().st_mtime_ns
    except OSError:
        stamp = 0
    return _names(str(config.runs_dir()), stamp)


@st.cache_data(max_entries=4, show_spinner=False)
def _names(runs_dir: str, stamp: int) -> dict[str, str]:
    return store().names()


def secrets_now() -> dict[str, Any]:
    """The server's settings (`app.shared.server`), read again only when the file changed: every script run asks
    several times (who is host, joined, which limits)."""
    try:
        stamp = server.settings_path(config.runs_dir()).stat().st_mtime_ns
    except OSError:
        stamp = 0
    return dict(_secrets(str(config.runs_dir()), stamp))


@st.cache_data(max_entries=4, show_spinner=False)
def _secrets(runs_dir: str, stamp: int) -> dict[str, Any]:
    return server.read(runs_dir)


def _token() -> str:
    token = st.session_state.get(SESSION_TOKEN)
    if people.valid_token(token):
        return token
    try:
        cookie = st.context.cookies.get(COOKIE)
    except Exception:  # noqa: BLE001 - no browser context (a bare script run)
        cookie = None
    token = cookie if people.valid_token(cookie) else people.new_token()
    st.session_state[SESSION_TOKEN] = token
    return token


def _set_cookie(token: str) -> None:
    """Keep the token in the browser. Streamlit reads cookies once, when the browser connects, so until a page
    load brings it back every full script run of this session sets it again: a run cut short by the next one
    (and its element never drawn) must not leave the browser without it, or its next page load would be a new
    person."""
    try:
        if st.context.cookies.get(COOKIE) == token:
            return
    except Exception:  # noqa: BLE001 - no browser (a bare script run)
        return
    st.html(f"<script>document.cookie = '{COOKIE}={token}; path=/; max-age={COOKIE_MAX_AGE_S}; "
            "SameSite=Strict';</script>", unsafe_allow_javascript=True)


def record(fresh: bool = False) -> dict[str, Any]:
    """This person's stored record (cached for the session; `fresh`: read from disk again, e.g. before a change
    is merged into it; `save_record` writes it)."""
    if fresh or _RECORD not in st.session_state:
        st.session_state[_RECORD] = store().load(pub())
    return st.session_state[_RECORD]


def save_record(rec: dict[str, Any]) -> None:
    st.session_state[_RECORD] = rec
    store().save(pub(), rec)


def pub() -> str:
    return people.public_id(_token())


def me() -> Person:
    """This person. Host and joined hold for the secrets the server has now (a restart makes new ones)."""
    rec, settings = record(), secrets_now()
    name = people.clean_name(rec.get("name")) or people.default_name(pub())
    host = bool(settings.get("host_key_sha256")) and rec.get("host") == settings.get("host_key_sha256")
    joined = bool(settings.get("join_code_sha256")) and rec.get("joined") == settings.get("join_code_sha256")
    return Person(pub(), name, host, joined or host)


def set_name(name: str) -> str:
    clean = people.clean_name(name)
    save_record({**record(), "name": clean})
    return clean or people.default_name(pub())


def claim_host(key: str) -> bool:
    """Become host if `key` is the host key; True on success."""
    stored = secrets_now().get("host_key_sha256")
    if not server.matches(key, stored):
        return False
    save_record({**record(), "host": stored})
    return True


def join(code: str) -> bool:
    """Join this server if `code` is its join code; True on success."""
    stored = secrets_now().get("join_code_sha256")
    if not server.matches(code, stored):
        return False
    save_record({**record(), "joined": stored})
    return True


def ensure_secrets() -> None:
    """A server started without the launcher makes its host key on the first page view and prints it."""
    runs = config.runs_dir()
    if secrets_now().get("host_key_sha256"):
        return
    made = server.new_secrets(runs, join=not server.is_loopback(st.get_option("server.address")))
    print(f"Learngene Studio host key: {made['host_key']}", file=sys.stderr, flush=True)
    if "join_code" in made:
        print(f"Learngene Studio join code: {made['join_code']}", file=sys.stderr, flush=True)


def needs_join() -> bool:
    return not server.is_loopback(st.get_option("server.address"))


def _take_query_secrets() -> None:
    """`?host=` and `?join=` are used once and taken out of the address (a link must not carry them)."""
    params = st.query_params
    if "host" in params:
        key = params.get("host")
        del params["host"]
        if claim_host(key):
            st.toast("You are the host of this studio.")
        else:
            st.toast("That host key is not this server's.")
    if "join" in params:
        code = params.get("join")
        del params["join"]
        join(code)


def join_page_ui() -> None:
    """The only thing a browser without the join code sees."""
    st.title("Learngene Studio")
    st.write("This studio is shared. Ask the person who runs it for the join code (or the join link).")
    with st.form("join-form"):
        code = st.text_input("join code", type="password", key="join-code")
        go = st.form_submit_button("Join", type="primary")
    if go:
        if join(code):
            st.rerun()
        st.error("That is not the join code.")


def gate() -> Person:
    """Identify the person, set their cookie, apply `?host=`/`?join=`; stop at the join page when needed."""
    ensure_secrets()
    _set_cookie(_token())
    _take_query_secrets()
    person = me()
    if needs_join() and not person.joined:
        join_page_ui()
        st.stop()
    return person


def host_ui() -> None:
    """Sidebar: the display name, and the host key field (or the host's badge)."""
    person = me()
    from app.logic import messages

    with st.sidebar.expander(f"**You** · {messages.md(person.name)}" + (" · host" if person.host else ""),
                             expanded=False):
        name = st.text_input("display name", person.name, max_chars=people.MAX_NAME, key="person-name",
                             help="shown on your runs and on the Class board")
        if name != person.name and st.button("Save name", key="person-name-go"):
            st.toast(f"You are now {messages.md(set_name(name))}")
            st.rerun()
        if not person.host:
            key = st.text_input("host key", type="password", key="host-key",
                                help="printed on the server's console when it started")
            if key and st.button("Become host", key="host-go"):
                st.toast("You are the host." if claim_host(key) else "That is not this server's host key.")
                st.rerun()


def uploads_dir() -> Path:
    """This person's uploads folder (inside the runs folder)."""
    return config.uploads_dir() / pub()


def limits_for(person: Person) -> server.Limits:
    return server.person_limits(config.runs_dir(), person.pub)


def start_as_me(mgr: Any, spec: Any) -> tuple[str, bool]:
    """Start `spec` as this person's run, within their limits (`app.shared.launch.start_once`)."""
    from app.shared import launch

    person = me()
    spec = dataclasses.replace(spec, owner=person.pub, owner_name=person.name)
    return launch.start_once(mgr, spec, limits=limits_for(person), host=person.host)


def may_act(info: Any) -> bool:
    """True when this person may cancel, delete, rename, tag or note the run: its owner or the host."""
    person = me()
    return person.host or (getattr(info.spec, "owner", None) or None) == person.pub


def name_of(owner: str, owner_name: Any = "", names: dict[str, str] | None = None) -> str:
    """A person's display name: their current one, else the one their run recorded, else `guest-xxxx`."""
    names = names if names is not None else all_names()
    return names.get(owner) or people.clean_name(owner_name or "") or people.default_name(owner)


def owner_label(info: Any, names: dict[str, str] | None = None) -> str:
    """Who started a run: 'you', their display name, or 'command line' for runs without an owner."""
    owner = getattr(info.spec, "owner", None)
    if not owner:
        return "command line"
    if owner == pub():
        return "you"
    return name_of(owner, getattr(info.spec, "owner_name", ""), names)
