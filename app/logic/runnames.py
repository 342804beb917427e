"""Names and colours of runs on the charts: one series per run id, told apart by what differs.

Runs started from the Train page are named after their settings; two runs with the same name used
to share one curve on an overlay (the series was keyed by the name). Series are keyed by run id now;
`labels` gives every run on a chart a distinct label: its name, plus the settings that differ between
runs of the same name (from their tags), else its start time, else a short id. `colors` gives every
run a colour of its own that is the same on every page: the palette colour of the run's queue
ticket (consecutive runs differ), moved to the next free one only when two runs on one chart collide.
No Streamlit here.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Tags that name a run's settings, in the order a label shows them, with their words.
SETTING_WORDS = {"lr": "lr", "weight_decay": "wd", "epochs": "epochs", "k_shot": "K", "n_way": "N", "tasks": "tasks",
                 "batch_size": "batch", "seed": "seed", "optimizer": "", "target_acc": "target", "layers": "layers",
                 "device": "", "ancestry": "ancestry"}


def _fmt(key: str, value: Any) -> str:
    if key == "ancestry":
        value = Path(str(value)).stem
    elif isinstance(value, list):
        value = ",".join(map(str, value))
    elif isinstance(value, float):
        value = f"{value:g}"
    word = SETTING_WORDS.get(key, key)
    return f"{word} {value}" if word else str(value)


def train_name(task: dict[str, Any], layers: Sequence[int]) -> str:
    """The auto-name of a Train-page run: '5-way 10-shot · layers 0,1 · lr 0.001 · 40 epochs'."""
    name = f"{task.get('n_way', '?')}-way {task.get('k_shot', '?')}-shot · layers {','.join(map(str, layers))}"
    if isinstance(task.get("lr"), (int, float)):
        name += f" · lr {task['lr']:g} · {task.get('epochs', '?')} epochs"
    return name


def short_id(run_id: str) -> str:
    """The random end of a run id (`20261201-101500-train-3fa9c2` -> `3fa9c2`)."""
    return run_id.rsplit("-", 1)[-1]


def _started(info: Any) -> str:
    t = getattr(info, "created_at", None)
    return time.strftime("%H:%M:%S", time.localtime(t)) if t else ""


def shown_name(info: Any) -> str:
    """The run's name: the one a person gave it (`learngene jobs annotate`), else the one it started with."""
    if getattr(info, "path", None) is None:
        return info.label
    from learngene.jobs.annotations import shown_name as annotated

    return annotated(info)


def labels(infos: Sequence[Any]) -> dict[str, str]:
    """A distinct, readable label per run (keyed by run id), in the order given: its name (the annotated
    one where given) plus what tells runs of the same name apart."""
    out = {i.run_id: shown_name(i) for i in infos}
    groups: dict[str, list[Any]] = {}
    for info in infos:
        groups.setdefault(out[info.run_id], []).append(info)
    for name, group in groups.items():
        if len(group) < 2:
            continue
        tags = [dict(getattr(i.spec, "tags", None) or {}) for i in group]
        differ = [k for k in SETTING_WORDS if len({repr(t.get(k)) for t in tags}) > 1]
        for info, t in zip(group, tags, strict=True):
            extra = [_fmt(k, t[k]) for k in differ if k in t]
            out[info.run_id] = " · ".join([name, *extra])
        for extra in (_started, lambda i: short_id(i.run_id)):  # nothing told them apart: start time, then short id
            counts: dict[str, int] = {}
            for info in group:
                counts[out[info.run_id]] = counts.get(out[info.run_id], 0) + 1
            for info in group:
                if counts[out[info.run_id]] > 1:
                    out[info.run_id] += f" · {extra(info)}"
    return out


def ticket(info: Any) -> int:
    """The run's queue ticket (its start order in the runs folder); a hash of its id when unknown."""
    from learngene.jobs.runs import read_config

    try:
        value = (read_config(Path(info.path)) or {}).get("ticket")
    except (OSError, ValueError):
        value = None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return zlib.crc32(info.run_id.encode())


def colors(infos: Sequence[Any], palette: Sequence[str]) -> dict[str, str]:
    """A palette colour per run id: the run's own (by its ticket), the next free one if already taken here."""
    out: dict[str, str] = {}
    taken: set[int] = set()
    for info in sorted(infos, key=ticket):
        idx = ticket(info) % len(palette)
        for step in range(len(palette)):
            if (idx + step) % len(palette) not in taken:
                idx = (idx + step) % len(palette)
                break
        taken.add(idx)
        out[info.run_id] = palette[idx]
    return out
