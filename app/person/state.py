"""A person's choices, kept across page changes and reloads: their record in `app.person.people` plus the URL.

`StudioState` holds what one person chose (ancestry, learngene layers, the similarity run in use,
the runs being watched, the descendant recipe, and the values of the settings widgets in `ui`). It
belongs to that person alone (`app.person.identity` says who is at the browser): it is loaded once per
browser session, every change is written to the person's record and mirrored into
`st.query_params`, so a reload restores it and a shared link carries the *choices* (never who
made them). Values in the URL win over the record (a pasted link shows what it names); a link may
name only an ancestry the person could pick themselves, and impossible layers are dropped with a
message.

Streamlit drops the value of a widget that a run did not draw (every widget of the page left by a
page switch), so the pages never rely on widget state alone: `app.ui.widgets.kept` puts a remembered
value back before the widget is drawn, and `remember` saves each change here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import streamlit as st

from app.person import identity
from app.shared import config

_FLASH = "_flash"
_SESSION_KEY = "_studio_state"
_NOTHING = object()
MAX_PUT_ASIDE = 20  # ancestries whose learngene is kept while another one is in use


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
    ui: dict[str, Any] = field(default_factory=dict)  # widget key -> last value chosen (settings, chart controls)
    by_ancestry: dict[str, Any] = field(default_factory=dict)  # ancestry path -> its learngene, put aside

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


def load_file() -> StudioState:
    """This person's saved choices (defaults for a new person or an unreadable record)."""
    saved = identity.record().get("state")
    return StudioState.from_dict(saved) if isinstance(saved, dict) else StudioState()


def save_file(state: StudioState, changed: dict[str, Any] | None = None, ui: dict[str, Any] | None = None) -> None:
    """Save this person's choices. With `changed` (fields) or `ui` (widget keys), only those are written over
    the record as it is on disk now: the same person in two tabs (or a page left while its last change was
    still being saved) changes different fields, and neither tab's old copy undoes the other's change."""
    try:
        rec = identity.record(fresh=changed is not None or ui is not None)
        if changed is None and ui is None:
            new = state.to_dict()
        else:
            saved = rec.get("state")
            new = StudioState.from_dict(saved if isinstance(saved, dict) else {}).to_dict()
            new.update({k: getattr(state, k) for k in (changed or {})})
            new["ui"] = {**new.get("ui", {}), **(ui or {})} if ui is not None else new["ui"]
        identity.save_record({**rec, "state": new})
    except (OSError, ValueError) as exc:  # a read-only runs folder or an oversized record must not break the page
        from app.logic import messages

        st.toast(f"could not save your choices: {messages.plain(exc, 120)}")


# --- URL: ancestry=<path>, layers=0,1,7, sim=<run id>, watch=<id>,<id> (the Train page's runs),
# runs=<id>,<id> (the runs selected on the Runs page); the page itself is the URL's path (/train, /runs).
RUNS_PICK = "runs-pick"  # the Runs page's selection, kept in `ui` under its widget key
RUNS_FILTERS = ("runs-kinds", "runs-states", "runs-tags", "runs-text")
QUERY_KEYS = ("ancestry", "layers", "sim", "watch", "runs")


def _run_ids(text: str) -> list[str]:
    from learngene.jobs.runs import is_run_id

    return list(dict.fromkeys(w.strip() for w in str(text).split(",") if is_run_id(w.strip())))


def parse_layers(text: str) -> list[int]:
    """'0, 1,7' -> [0, 1, 7]; anything that is not a non-negative integer is dropped."""
    return parse_layers_checked(text)[0]


def parse_layers_checked(text: str) -> tuple[list[int], list[str]]:
    """(layers, dropped): the non-negative integers of a comma list, and the parts that are not."""
    out, dropped = set(), []
    for part in str(text).split(","):
        part = part.strip()
        if part.isdigit() and len(part) <= 6:
            out.add(int(part))
        elif part:
            dropped.append(part[:12])
    return sorted(out), dropped


def _layer_count(ancestry: str) -> int | None:
    from app.person import resources

    try:
        path = Path(ancestry) if ancestry else config.default_ancestry()
        return resources.load_ancestry(path).n_layers
    except Exception:  # noqa: BLE001 - an ancestry that does not load is reported by the pages
        return None


def _from_query(state: StudioState, params: Any) -> tuple[StudioState, list[str]]:
    """The choices a link names, laid over the person's own; returns (state, what was dropped, in words)."""
    from app.person import ancestries

    said = []
    if params.get("ancestry"):
        if ancestries.may_pick(str(params["ancestry"])):
            state.ancestry = str(params["ancestry"])
        else:  # one message whatever the value: the page must not tell which paths exist
            said.append("The link named an ancestry that is not in this studio's list; it was ignored.")
    if "layers" in params:
        layers, dropped = parse_layers_checked(params["layers"])
        n = _layer_count(state.ancestry) if layers else None
        too_big = [i for i in layers if n is not None and i >= n]
        state.layers = [i for i in layers if i not in too_big]
        if dropped or too_big:
            from app.logic.messages import md

            dropped = [md(d, 12) for d in dropped]  # a link's text shown as text: no markdown image to fetch
            said.append(f"The link's layers {', '.join(dropped + [str(i) for i in too_big])} were ignored: the "
                        f"ancestry has layers 0 to {(n or 1) - 1}." if n else
                        f"The link's layers {', '.join(dropped)} were ignored: layers are whole numbers from 0.")
    if params.get("sim") and _run_ids(params["sim"]):
        state.similarity_run = _run_ids(params["sim"])[0]
    if params.get("watch"):
        state.watched = _run_ids(params["watch"])[:4]
    if params.get("runs"):  # a link to runs shows them: the Runs page's filters must not hide them
        ui = {k: v for k, v in state.ui.items() if k not in RUNS_FILTERS}
        state.ui = {**ui, RUNS_PICK: _run_ids(params["runs"])}
    return state, said


def _to_query(state: StudioState) -> dict[str, str]:
    q = {"layers": ",".join(map(str, state.layers))}
    if state.ancestry:
        q["ancestry"] = state.ancestry
    if state.similarity_run:
        q["sim"] = state.similarity_run
    if state.watched:
        q["watch"] = ",".join(state.watched)
    picked = state.ui.get(RUNS_PICK)
    if isinstance(picked, list) and picked:
        q["runs"] = ",".join(map(str, picked))
    return q


def _sync_query(state: StudioState) -> None:
    want = _to_query(state)
    for key in QUERY_KEYS:
        if key in want:
            if st.query_params.get(key) != want[key]:
                st.query_params[key] = want[key]
        elif key in st.query_params:
            del st.query_params[key]


def flash(message: str) -> None:
    """Say `message` at the top of the next page drawn (after an `st.rerun` or a page switch; see
    `app.ui.widgets.flash_ui`)."""
    st.session_state[_FLASH] = message


def take_flash() -> str | None:
    """The message `flash` left, once."""
    return st.session_state.pop(_FLASH, None)


def get() -> StudioState:
    """The session's state: loaded from the file and the URL on the first call of a session."""
    if _SESSION_KEY not in st.session_state:
        on_disk = load_file()
        state, said = _from_query(StudioState.from_dict(on_disk.to_dict()), st.query_params)
        if state != on_disk:  # a link named other choices: they are now the current ones
            save_file(state)
        st.session_state[_SESSION_KEY] = state
        if said:
            flash(" ".join(said))
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
    save_file(state, changed={k: True for k in changes if k != "ui"}, ui=changes.get("ui"))
    _sync_query(state)
    return state


def remember(key: str, value: Any) -> StudioState:
    """Save the value a person gave the widget `key` (it comes back after a page change or a reload)."""
    state = get()
    if state.ui.get(key, _NOTHING) == value:
        return state
    state.ui = {**state.ui, key: value}
    save_file(state, changed={}, ui={key: value})
    _sync_query(state)  # the Runs page's selection is in the address too
    return state


def recalled(key: str, default: Any = None) -> Any:
    """The remembered value of the widget `key` (`default` when none)."""
    return get().ui.get(key, default)


def switch_ancestry(value: str, key_now: str, key_new: str) -> tuple[StudioState, dict[str, Any], dict[str, Any]]:
    """Make `value` the ancestry (`""` = the default); the learngene belongs to the old one.

    The current learngene (layers, similarity result, learngene file, recipe) is put aside under
    `key_now`, and the one put aside for `key_new` (if any) comes back. Returns (state, put aside,
    restored); the last two are empty when there was nothing to put aside or to restore.
    """
    s = get()
    mine = {"layers": list(s.layers), "similarity_run": s.similarity_run, "learngene_file": s.learngene_file,
            "recipe": dict(s.recipe)}
    aside = {k: v for k, v in s.by_ancestry.items() if k not in (key_now, key_new)}
    kept = mine if any(mine.values()) else {}
    if kept:
        aside[key_now] = kept
    back = s.by_ancestry.get(key_new) if isinstance(s.by_ancestry.get(key_new), dict) else {}
    aside = dict(list(aside.items())[-MAX_PUT_ASIDE:])
    restored = StudioState.from_dict({**back}) if back else StudioState()
    new = update(ancestry=value, layers=restored.layers, similarity_run=restored.similarity_run,
                 learngene_file=restored.learngene_file, recipe=restored.recipe, by_ancestry=aside)
    return new, kept, (back or {})


def toggle_layer(index: int) -> StudioState:
    """Add the layer to the learngene, or remove it if already chosen."""
    layers = set(get().layers)
    layers.symmetric_difference_update({int(index)})
    return update(layers=sorted(layers))
