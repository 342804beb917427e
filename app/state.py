"""State that survives a page reload: a small JSON file in the runs folder plus the URL.

`StudioState` holds what a person chose (ancestry, learngene layers, the similarity run in use,
the runs being watched, the descendant recipe). It is loaded once per browser session, then every
change is written atomically to `<runs>/.studio_state.json` and mirrored into `st.query_params`,
so a reload or a shared link restores it. Values in the URL win over the file (a pasted link
shows what it names).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import streamlit as st

from app import config
from learngene.runlog import atomic_write_json, read_json

STATE_FILE = ".studio_state.json"
_SESSION_KEY = "_studio_state"


@dataclass
class StudioState:
    """The persistent choices of the studio."""

    ancestry: str = ""  # checkpoint path; "" = the embedded default
    layers: list[int] = field(default_factory=list)  # chosen learngene layers (ancestry indices)
    similarity_run: str = ""  # run id whose outputs/similarity.json is in use
    watched: list[str] = field(default_factory=list)  # run ids shown live on the Train page
    learngene_file: str = ""  # an uploaded or downloaded learngene file in use, if any
    recipe: dict[str, Any] = field(default_factory=dict)  # descendant recipe settings
    demo: dict[str, Any] = field(default_factory=dict)  # the Home page's one-click demo: its run ids

    @classmethod
    def from_dict(cls, data: Any) -> StudioState:
        """Lenient: unknown keys and values of the wrong type fall back to the defaults."""
        out = cls()
        if not isinstance(data, dict):
            return out
        for f in fields(cls):
            value = data.get(f.name)
            default = getattr(out, f.name)
            if value is None or type(value) is not type(default):
                continue
            if f.name == "layers":
                value = sorted({int(v) for v in value if isinstance(v, int) and v >= 0})
            elif f.name == "watched":
                value = [str(v) for v in value]
            setattr(out, f.name, value)
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def state_path() -> Path:
    return config.runs_dir() / STATE_FILE


def load_file() -> StudioState:
    """The state saved on disk (defaults when missing or unreadable)."""
    try:
        return StudioState.from_dict(read_json(state_path(), default={}))
    except (OSError, ValueError):
        return StudioState()


def save_file(state: StudioState) -> None:
    try:
        atomic_write_json(state_path(), state.to_dict())
    except OSError as exc:  # a read-only runs folder must not break the page
        st.toast(f"could not save the studio state: {exc}")


# --- URL: ancestry=<path>, layers=0,1,7, sim=<run id>, watch=<id>,<id>


def parse_layers(text: str) -> list[int]:
    """'0, 1,7' -> [0, 1, 7]; anything that is not a non-negative integer is dropped."""
    out = set()
    for part in str(text).split(","):
        part = part.strip()
        if part.isdigit():
            out.add(int(part))
    return sorted(out)


def _from_query(state: StudioState, params: Any) -> StudioState:
    if params.get("ancestry"):
        state.ancestry = str(params["ancestry"])
    if "layers" in params:
        state.layers = parse_layers(params["layers"])
    if params.get("sim"):
        state.similarity_run = str(params["sim"])
    if params.get("watch"):
        state.watched = [w for w in str(params["watch"]).split(",") if w]
    return state


def _to_query(state: StudioState) -> dict[str, str]:
    q = {"layers": ",".join(map(str, state.layers))}
    if state.ancestry:
        q["ancestry"] = state.ancestry
    if state.similarity_run:
        q["sim"] = state.similarity_run
    if state.watched:
        q["watch"] = ",".join(state.watched)
    return q


def _sync_query(state: StudioState) -> None:
    want = _to_query(state)
    for key in ("ancestry", "layers", "sim", "watch"):
        if key in want:
            if st.query_params.get(key) != want[key]:
                st.query_params[key] = want[key]
        elif key in st.query_params:
            del st.query_params[key]


def get() -> StudioState:
    """The session's state: loaded from the file and the URL on the first call of a session."""
    if _SESSION_KEY not in st.session_state:
        on_disk = load_file()
        state = _from_query(StudioState.from_dict(on_disk.to_dict()), st.query_params)
        if state != on_disk:  # a link named other choices: they are now the current ones
            save_file(state)
        st.session_state[_SESSION_KEY] = state
    state: StudioState = st.session_state[_SESSION_KEY]
    _sync_query(state)
    return state


def update(**changes: Any) -> StudioState:
    """Change some fields, save to disk and mirror into the URL."""
    state = get()
    for key, value in changes.items():
        if not hasattr(state, key):
            raise AttributeError(f"StudioState has no field {key!r}")
        setattr(state, key, value)
    state.layers = sorted({int(i) for i in state.layers})
    save_file(state)
    _sync_query(state)
    return state


def toggle_layer(index: int) -> StudioState:
    """Add the layer to the learngene, or remove it if already chosen."""
    layers = set(get().layers)
    layers.symmetric_difference_update({int(index)})
    return update(layers=sorted(layers))
