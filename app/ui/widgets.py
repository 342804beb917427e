"""Widget helpers shared by the pages: each `*_ui` function draws widgets and returns the choices."""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import streamlit as st

from app.logic import messages
from app.person import identity, resources, state
from app.shared import config, launch
from learngene.errors import LearngeneError

# Streamlit's material icons (an emoji renders as a box where the emoji font is missing).
STATE_ICONS = {"queued": ":material/schedule:", "running": ":material/play_circle:", "done": ":material/check_circle:",
               "failed": ":material/error:", "cancelled": ":material/stop_circle:", "diverged": ":material/warning:",
               "unreadable": ":material/help:"}  # unreadable: the run's status.json failed validation (the reason says why)


def error_ui(message: str, detail: str | None = None) -> None:
    """A short plain error message, with the full text (and traceback) in an expander below it."""
    st.error(messages.plain(message), icon=":material/error:")
    full = messages.detail(detail if detail is not None else message)
    if full:
        with st.expander("details"):
            st.code(full, language="text")


@contextlib.contextmanager
def error_box(what: str = "") -> Iterator[None]:
    """Run a block; show any error it raises as a short message in the page (details in an expander)."""
    prefix = f"{what}: " if what else ""
    try:
        yield
    except ImportError as exc:
        st.warning(f"{prefix}this part of the library is not available yet ({messages.plain(exc)}).")
    except (LearngeneError, ValueError, OSError, KeyError) as exc:
        text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        error_ui(prefix + text, text)
    except Exception as exc:  # noqa: BLE001 - the page must survive anything; show what happened
        error_ui(f"{prefix}unexpected {type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc)))


def flash_ui() -> None:
    """Show the message `state.flash` left, once."""
    message = state.take_flash()
    if message:
        st.info(message, icon=":material/info:")


def kept(key: str, default: Any, valid: Callable[[Any], bool] | None = None,
         on_change: Callable[[], None] | None = None) -> dict[str, Any]:
    """`key` and `on_change` for a widget whose value survives page changes and reloads.

    Streamlit forgets a widget's value when a run does not draw it (a page switch), and a new
    session starts empty. Its value is put back from the studio state before it is drawn, and every
    change is saved there (`state.remember`). Draw the widget with these keyword arguments and
    without `value`/`index`/`default`; `valid` refuses a remembered value the widget cannot take
    now (e.g. an option that is gone), which then falls back to `default`.
    """
    def ok(value: Any) -> bool:
        try:
            return valid is None or bool(valid(value))
        except Exception:  # noqa: BLE001 - a remembered value of another shape is simply not used
            return False

    if key not in st.session_state:
        saved = state.recalled(key, default)
        st.session_state[key] = saved if ok(saved) else default
    elif not ok(st.session_state[key]):
        st.session_state[key] = default

    def changed() -> None:
        state.remember(key, st.session_state.get(key))
        if on_change is not None:
            on_change()

    return {"key": key, "on_change": changed}


def explain_ui(title: str, body: str, expanded: bool = False) -> None:
    """A collapsible explanation, for reading the page as a lesson."""
    with st.expander(f":material/school: {title}", expanded=expanded):
        st.markdown(body)


def ancestry_ui(show_missing: bool = True) -> resources.Ancestry | None:
    """Load the current ancestry; on trouble explain it (and how to create the default) and return None."""
    path = resources.current_ancestry_path()
    try:
        return resources.current_ancestry()
    except ImportError as exc:
        if show_missing:
            st.warning(f"The model library is not available yet ({messages.plain(exc)}).")
    except LearngeneError as exc:
        if not show_missing:
            return None
        if not path.is_file() and path == config.default_ancestry():
            st.info(f"The embedded default ancestry `{path.name}` is not there yet. Create it with:")
            st.code(config.CREATE_DEFAULT_HINT, language="bash")
            st.caption("…or choose, upload or train another ancestry on the **Ancestry** page.")
        else:
            error_ui(f"Cannot load the ancestry {path.name}: {exc}", f"{path}\n{exc}")
            st.caption("Choose another one on the **Ancestry** page.")
    except Exception as exc:  # noqa: BLE001 - a corrupt file can raise anything from safetensors/torch
        if show_missing:
            error_ui(f"Cannot load the ancestry {path.name}: {type(exc).__name__}: {exc}",
                     f"{path}\n" + "".join(traceback.format_exception(exc)))
    return None


def sidebar_ui() -> None:
    """The sidebar: the current ancestry and learngene at a glance (from the state only: no model loading)."""
    s = state.get()
    identity.host_ui()
    with st.sidebar:
        path = resources.current_ancestry_path()
        st.caption(f"**Ancestry** · `{path.name}`" + ("" if path.is_file() else " (missing)"))
        st.caption("**Learngene** · " + (f"layers {', '.join(map(str, s.layers))}" if s.layers else "no layers chosen"))
        if s.watched:
            st.caption(f"**Watching** · {len(s.watched)} run(s) on the Train page")


def card_ui(anc: resources.Ancestry) -> None:
    """The ancestry's model card: data, accuracy, size, how it was made."""
    card = anc.card_dict
    spec = card.get("spec", {})
    c = st.columns(3)
    c[0].metric("integral layers", anc.n_layers)
    c[1].metric("parameters", f"{anc.total_params / 1e6:.2f} M")
    acc = card.get("base_accuracy")
    c[2].metric("base-class accuracy", f"{acc:.1%}" if isinstance(acc, (int, float)) else "n/a")
    split = card.get("split") or {}
    parts = ", ".join(f"{len(split[k])} {k.replace('_', '-')}" for k in ("base", "open_world", "novel")
                      if isinstance(split.get(k), list))
    st.caption(f"**{spec.get('arch', '?')}** ({anc.family}) · data **{card.get('dataset', '?')}**"
               f"{f' ({parts} classes)' if parts else ''} · epochs {card.get('epochs', '?')} · "
               f"seed {card.get('seed', '?')} · `{anc.path}`")
    if card.get("command"):
        st.code(card["command"], language="bash")


def layers_table_ui(anc: resources.Ancestry, chosen: list[int] | None = None) -> None:
    """The integral layers: index, name, parameters, share of the model, chosen or not."""
    chosen = set(chosen or [])
    df = pd.DataFrame({
        "layer": range(anc.n_layers), "name": anc.names, "parameters": anc.layer_params,
        "share": [p / max(anc.total_params, 1) for p in anc.layer_params],
        "learngene": [i in chosen for i in range(anc.n_layers)],
    })
    st.dataframe(df, hide_index=True, width="stretch", column_config={
        "share": st.column_config.ProgressColumn("share of model", format="percent", min_value=0.0, max_value=1.0),
        "parameters": st.column_config.NumberColumn(format="localized"),
    })


def eta_seconds(info: Any) -> float | None:
    """Seconds left, extrapolated from the run's progress (None when unknown)."""
    prog = info.progress or {}
    done, total = prog.get("done") or 0, prog.get("total") or 0
    if not info.started_at or not total or done <= 0 or info.state != "running":
        return None
    elapsed = time.time() - info.started_at
    return max(0.0, elapsed * (total - done) / done)


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "—"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def run_label(info: Any, name: str | None = None) -> str:
    """The progress line of a run: state icon, name, state, place in the queue or progress, time left."""
    prog = info.progress or {}
    done, total = prog.get("done") or 0, prog.get("total") or 0
    label = f"{STATE_ICONS.get(info.state, '')} **{messages.md(name or info.label)}** · {info.state}"
    place = launch.queue_text(info) if info.state == "queued" else ""
    if place:
        label += f" · {place}"
    if total:
        label += f" · {done}/{total}"
    if info.state == "running":
        label += f" · about {fmt_seconds(eta_seconds(info))} left"
    if prog.get("message"):
        label += f" · {messages.plain(prog['message'], 160)}"
    return label


def run_progress_ui(info: Any, *, cancel: bool = True, key: str = "", name: str | None = None) -> None:
    """One run: state, place in the queue, progress bar with the estimated time left, cancel button, and why
    it failed (a short plain message; the reason and the log in an expander)."""
    prog = info.progress or {}
    done, total = prog.get("done") or 0, prog.get("total") or 0
    frac = min(1.0, done / total) if total else (1.0 if info.state == "done" else 0.0)
    cols = st.columns([5, 1]) if cancel else [st.container()]
    cols[0].progress(frac, text=run_label(info, name))
    stoppable = info.live or getattr(info, "leftover_worker", None) is not None  # a worker that outlived its supervisor
    if cancel and stoppable and not identity.may_act(info):
        cols[1].caption(f"started by {identity.owner_label(info)}")
    elif cancel and stoppable and cols[1].button("Cancel", key=f"cancel-{key}{info.run_id}", icon=":material/stop:"):
        with error_box("cancel"):
            resources.jobs().cancel(info.run_id)
            st.toast(f"cancelling {info.run_id}")
    if info.state in ("failed", "diverged", "unreadable") and (info.reason or info.log_tail):
        st.caption(f":red[{messages.run_problem(info)}]")
        with st.expander("why it is unreadable" if info.state == "unreadable" else f"why it {info.state}: details"):
            st.code(messages.detail(info.reason or ""), language="text")
            if info.log_tail:
                st.code(messages.detail(messages.lines_from_end(info.log_tail, 4000)), language="text")


def start_job_ui(label: str, argv: list[str], *, kind: str, name: str, device: str = "cpu",
                 group: str | None = None, role: str | None = None, tags: dict | None = None,
                 key: str, disabled: bool = False, help: str | None = None, interactive: bool = False) -> str | None:
    """A button that starts `python -m learngene <argv>` as a background job; returns the run id.

    A second click with the same settings while the first run is queued or running returns that run
    (`launch.start_once`), so a double click starts one job. `interactive`: a short job a person waits
    for (e.g. condensing), started with one CPU slot more than the default so that it runs beside a
    training job instead of queueing behind it.
    """
    if not st.button(label, key=key, type="primary", disabled=disabled, help=help, icon=":material/play_arrow:"):
        return None
    from learngene.jobs import JobSpec

    with error_box("could not start the job"):
        from app.person import pipeline

        mgr = pipeline.interactive_jobs() if interactive else resources.jobs()
        run_id, started = identity.start_as_me(mgr, JobSpec(argv=argv, kind=kind, device=device, name=name,
                                                            group=group, role=role, tags=tags or {}))
        st.toast(f"started {run_id}" if started else f"the same settings are already {mgr.get(run_id).state}: {run_id}")
        return run_id
    return None


def device_ui(key: str) -> str:
    """cpu / cuda choice (cuda runs hold the single GPU slot; the web process never touches CUDA)."""
    return st.segmented_control("device", ["cpu", "cuda"], help="where the background job trains; cuda needs a GPU on "
                                "this machine", **kept(key, "cpu", lambda v: v in ("cpu", "cuda", None))) or "cpu"


def sync_widget(key: str, value: Any) -> None:
    """Set a keyed widget to `value` when the persistent state changed elsewhere since the last sync.

    Call before drawing the widget (without `default`/`value`), and write the widget's changes back
    to the state in its `on_change`.
    """
    marker = f"{key}::synced"
    # The widget's own value is gone after a page switch (Streamlit drops the state of widgets a run did not
    # draw) while the marker is not: put it back then too, or the widget comes back empty.
    if st.session_state.get(marker) != value or key not in st.session_state:
        st.session_state[key] = value
        st.session_state[marker] = value


def download_figure_ui(fig: Any, name: str, key: str) -> None:
    """HTML (always) and PNG (when plotly's kaleido is installed) downloads of a figure."""
    from app.logic import history

    c = st.columns(2)
    c[0].download_button("Figure as HTML", data=lambda: history.figure_html(fig), file_name=f"{name}.html",
                         mime="text/html", key=f"{key}-html", on_click="ignore", icon=":material/download:")
    if history.png_available():
        c[1].download_button("Figure as PNG", data=lambda: history.figure_png(fig), file_name=f"{name}.png",
                             mime="image/png", key=f"{key}-png", on_click="ignore", icon=":material/image:")
    else:
        c[1].caption("PNG: use the camera icon of the chart (server-side PNG needs the `kaleido` package).")


def backend_ui(key: str) -> list[str]:
    """Where a sweep or study trains: here (one process) or on Ray (every run a Ray task). Returns the
    command-line words (`--backend ray [--ray-address A]`) and shows the CPUs/GPUs that Ray would get."""
    import importlib.util
    import json
    import subprocess
    import sys

    from learngene.cluster.info import describe, resources
    from learngene.cluster.options import backend_argv

    c = st.columns([1, 2])
    backend = c[0].segmented_control(
        "backend", ["local", "ray"], help="local: one run after another in one process; ray: every run a Ray task, "
        "on a local Ray with this machine's CPUs or on a running cluster",
        **kept(f"{key}-backend", "local", lambda v: v in ("local", "ray", None))) or "local"
    if backend == "local":
        return []
    address = c[1].text_input("Ray address", placeholder="empty: a local Ray on this machine",
                              help="HOST:PORT of a running Ray cluster's head (every node needs this package)",
                              **kept(f"{key}-ray-address", "", lambda v: isinstance(v, str))).strip() or None
    if importlib.util.find_spec("ray") is None:
        st.caption(":red[Ray is not installed here: `pip install -e .[cluster]`]")
    elif address is None:
        st.caption(describe(resources(None)))
    elif st.button("Ask the cluster for its CPUs and GPUs", key=f"{key}-ray-ask"):
        cmd = [sys.executable, "-m", "learngene", "cluster", "--ray-address", address, "--json"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=config.ROOT)
        except subprocess.TimeoutExpired:
            st.caption(f":red[no answer from {address} within 90 s]")
        else:
            if done.returncode == 0:
                st.caption(describe(json.loads(done.stdout.strip().splitlines()[-1])))
            else:
                st.caption(f":red[{messages.plain(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed')}]")
    return backend_argv("ray", address)
