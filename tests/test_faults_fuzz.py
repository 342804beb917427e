"""Property-based fuzzing of every parser that reads a file a user or a crash can corrupt.

Any bytes, and structured near-misses of a valid file (valid JSON with wrong types, missing or extra keys,
huge numbers, NaN, nested junk), must give either a valid object or the project's own clear error (a
`LearngeneError`, or for status.json the documented "unreadable" state) -- never a raw TypeError,
KeyError, AttributeError, ValueError, UnicodeDecodeError, OverflowError or RecursionError.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learngene.condense.result import FORMAT as SIM_FORMAT
from learngene.condense.result import SimilarityResult
from learngene.data.sources import read_split_file
from learngene.descend.probe import FORMAT as PROBE_FORMAT
from learngene.descend.probe import ProbeResult
from learngene.errors import LearngeneError
from learngene.inherit.recipe import Recipe
from learngene.jobs.manager import JobManager
from learngene.jobs.runs import (
    CONFIG_FILE,
    STATES,
    STATUS_FILE,
    UNREADABLE,
    JobSpec,
    RunInfo,
    build_info,
    read_config,
    read_progress,
    read_status,
)
from learngene.runlog import METRICS_FILE, PROGRESS_FILE, read_jsonl

FUZZ = settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck))

# -- strategies -----------------------------------------------------------------------------------------
HUGE = [10**400, -(10**400), 2**63, -(2**63) - 1, 10**4000]
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(HUGE),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_junk = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
DEEP = 3000
SPECIAL_BYTES = [
    b"",
    b"null",
    b"[]",
    b"{}",
    b'"text"',
    b"\xff\xfe\x00{",
    b"\xef\xbb\xbf{}",
    b"[" * DEEP + b"]" * DEEP,
    b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    b"1" * 5000,
    b'{"x": ' + b"9" * 5000 + b"}",
    b'{"x": NaN, "y": Infinity, "z": -Infinity}',
    b'{"x": 1e999}',
    b'{"x": 1',
]
raw_bytes = st.one_of(st.binary(max_size=300), st.sampled_from(SPECIAL_BYTES))


def _slots(obj: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) position inside a JSON document."""
    out: list[tuple[Any, Any]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((obj, k))
            out.extend(_slots(v))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append((obj, i))
            out.extend(_slots(v))
    return out


def near_miss(base: dict) -> st.SearchStrategy[dict]:
    """`base` with one to three values replaced by junk, deleted, or junk keys added."""

    @st.composite
    def build(draw) -> dict:
        doc = copy.deepcopy(base)
        for _ in range(draw(st.integers(1, 3))):
            positions = _slots(doc)
            containers = [doc] + [c[k] for c, k in positions if isinstance(c[k], (dict, list))]
            op = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
            if op == "add" or not positions:
                target = draw(st.sampled_from(containers))
                if isinstance(target, dict):
                    target[draw(st.text(max_size=8))] = draw(json_junk)
                else:
                    target.append(draw(json_junk))
                continue
            container, key = draw(st.sampled_from(positions))
            if op == "delete":
                del container[key]
            else:
                container[key] = draw(json_junk)
        return doc

    return build()


def _encode(doc: Any) -> bytes:
    try:
        return json.dumps(doc).encode()
    except ValueError:  # an int past Python's digit limit: still a file someone could write
        return b'{"x": ' + b"9" * 5000 + b"}"


def any_file(base: dict) -> st.SearchStrategy[bytes]:
    return st.one_of(raw_bytes, json_junk.map(_encode), near_miss(base).map(_encode))


_counter = itertools.count()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A fresh folder per hypothesis example (function-scoped tmp_path is shared by all examples)."""
    root = tmp_path_factory.mktemp("fuzz")

    def fresh() -> Path:
        p = root / f"e{next(_counter)}"
        p.mkdir()
        return p

    return fresh


# -- run folders: status.json, config.json, progress.json ------------------------------------------------
RUN_ID = "20250101-120000-train-a1b2c3"
SPEC = JobSpec(argv=["train", "--epochs", "1"]).validated().to_dict()
CONFIG = {"spec": SPEC, "command": ["python", "-m", "learngene", "train"], "created_at": 1.7e9, "ticket": 0,
          "grace_s": 5.0, "stale_after_s": 60.0, "max_cpu_jobs": 1, "token": "abc", "cwd": "/tmp"}
STATUS = {"state": "done", "exit_code": 0, "started_at": 1.7e9, "ended_at": 1.7e9 + 5, "updated_at": 1.7e9 + 5,
          "supervisor_pid": 100, "worker_pid": 101, "worker_pgid": 101, "worker_start": 5, "reason": None,
          "log_tail": ""}
PROGRESS = {"done": 1, "total": 2, "message": "epoch 1/2"}


def _run_dir(root: Path, config: bytes | None = None, status: bytes | None = None,
             progress: bytes | None = None) -> Path:
    run = root / RUN_ID
    run.mkdir()
    (run / CONFIG_FILE).write_bytes(json.dumps(CONFIG).encode() if config is None else config)
    (run / STATUS_FILE).write_bytes(json.dumps(STATUS).encode() if status is None else status)
    (run / PROGRESS_FILE).write_bytes(json.dumps(PROGRESS).encode() if progress is None else progress)
    return run


def _check_info(info: RunInfo) -> None:
    assert info.state in STATES
    assert isinstance(info.to_dict(), dict)
    _ = info.label, info.duration_s, info.live


@FUZZ
@given(blob=any_file(STATUS))
def test_status_json_reads_as_a_state_or_unreadable(scratch, blob):
    run = _run_dir(scratch(), status=blob)
    status = read_status(run)
    assert isinstance(status, dict) and status["state"] in STATES
    if status["state"] == UNREADABLE:
        assert status["reason"].startswith(STATUS_FILE)
    _check_info(build_info(RUN_ID, run, read_config(run), status))


@FUZZ
@given(blob=any_file(CONFIG))
def test_config_json_is_valid_or_the_run_is_skipped(scratch, blob):
    root = scratch()
    run = _run_dir(root, config=blob)
    config = read_config(run)
    assert config is None or isinstance(config, dict)
    manager = JobManager(root)
    infos = manager.list()  # status is "done": no reconciling with processes
    assert len(infos) == (config is not None)
    for info in infos:
        _check_info(info)
    try:
        _check_info(manager.get(RUN_ID))
    except LearngeneError:
        assert config is None


@FUZZ
@given(blob=any_file(PROGRESS))
def test_progress_json_is_valid_or_none(scratch, blob):
    run = _run_dir(scratch(), progress=blob)
    progress = read_progress(run)
    assert progress is None or isinstance(progress, dict)
    _check_info(build_info(RUN_ID, run, read_config(run), read_status(run)))


# -- metrics JSONL ---------------------------------------------------------------------------------------
METRIC = {"epoch": 1, "loss": 0.5, "acc": 0.9, "split": "train"}
jsonl_line = st.one_of(raw_bytes, json_junk.map(_encode), near_miss(METRIC).map(_encode))


@FUZZ
@given(lines=st.lists(jsonl_line, max_size=6), tail=st.binary(max_size=40), offset=st.integers(0, 400))
def test_metrics_jsonl_yields_dicts_and_a_sane_offset(scratch, lines, tail, offset):
    root = scratch()
    run = _run_dir(root)
    data = b"\n".join(lines) + b"\n" + tail
    (run / METRICS_FILE).write_bytes(data)
    records, new_offset = read_jsonl(run / METRICS_FILE, offset)
    assert all(isinstance(r, dict) for r in records)
    assert offset <= new_offset <= max(offset, len(data))
    records, new_offset = JobManager(root).read_metrics(RUN_ID, 0)
    assert all(isinstance(r, dict) for r in records) and 0 <= new_offset <= len(data)


# -- split files -----------------------------------------------------------------------------------------
CLASSES = [f"c{i}" for i in range(8)]
SPLIT = {"base": ["c0", "c1", "c2", "c3"], "open_world": ["c4", "c5"], "novel": ["c6", "c7"]}


@FUZZ
@given(blob=any_file(SPLIT))
def test_split_file_is_a_split_or_a_data_error(scratch, blob):
    path = scratch() / "split.json"
    path.write_bytes(blob)
    try:
        split = read_split_file(path, CLASSES)
    except LearngeneError as exc:
        assert str(path) in str(exc)
        return
    assert split is not None


# -- recipe JSON -----------------------------------------------------------------------------------------
RECIPE = {"version": 1, "ancestry": {"arch": "lg_vit_tiny", "num_classes": 8, "img_size": 32,
                                     "overrides": {"depth": 4}},
          "ancestry_layers": 4, "slots": [{"source": "inherit", "layer": 0}, {"source": "random", "layer": 1}],
          "stem": "inherit", "num_classes": 5, "placement": "custom", "notes": {"why": "test"}}


def test_recipe_base_is_valid():
    RECIPE["version"] = Recipe.from_dict({k: v for k, v in RECIPE.items() if k != "version"}).to_dict()["version"]
    written = Recipe.from_dict(RECIPE).to_dict()  # with the defaults of fields RECIPE leaves out (width, fill)
    assert {k: written[k] for k in RECIPE} == RECIPE
    assert Recipe.from_dict(written).to_dict() == written  # a written recipe reads back the same


@FUZZ
@given(blob=any_file(RECIPE))
def test_recipe_json_is_a_recipe_or_a_config_error(blob):
    try:
        data = json.loads(blob)
    except (ValueError, RecursionError):
        return  # not JSON at all: the recipe parser takes parsed JSON
    try:
        recipe = Recipe.from_dict(data)
    except LearngeneError:
        return
    assert isinstance(recipe.to_dict(), dict)
    recipe.describe()


# -- learngene file metadata -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def learngene_meta(tmp_path_factory):
    """The metadata of a real learngene file, and a writer of files with the same tensors and other metadata."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from learngene.inherit.learngene_file import META_KEY, load_learngene, save_learngene
    from learngene.models import create_model

    torch.manual_seed(0)
    model = create_model("lg_vit_tiny", 8, depth=2)
    path = tmp_path_factory.mktemp("lg") / "good.safetensors"
    save_learngene(model, [0], path)
    load_learngene(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}

    def write(where: Path, text: str) -> Path:
        out = where / "lg.safetensors"
        save_file(tensors, str(out), metadata={**meta, META_KEY: text})
        return out

    return json.loads(meta[META_KEY]), write


def test_learngene_meta_base_is_valid(learngene_meta, scratch):
    from learngene.inherit.learngene_file import load_learngene

    meta, write = learngene_meta
    lg = load_learngene(write(scratch(), json.dumps(meta)))
    assert lg.metadata() == meta  # every field read back as written
    assert lg.layers == (0,) and lg.n_layers == 2 and set(lg.layer_states) == {0}


@FUZZ
@given(data=st.data())
def test_learngene_metadata_is_a_learngene_or_a_checkpoint_error(learngene_meta, scratch, data):
    from learngene.inherit.learngene_file import load_learngene

    meta, write = learngene_meta
    blob = data.draw(any_file(meta))
    text = blob.decode("utf-8", errors="replace")
    path = write(scratch(), text)
    try:
        lg = load_learngene(path)
    except LearngeneError as exc:
        assert str(path) in str(exc)
        return
    assert lg.layers


@FUZZ
@given(blob=raw_bytes)
def test_learngene_file_bytes_are_a_checkpoint_error(scratch, blob):
    from learngene.inherit.learngene_file import load_learngene

    path = scratch() / "lg.safetensors"
    path.write_bytes(blob)
    with pytest.raises(LearngeneError):
        load_learngene(path)


# -- similarity result and probe JSON --------------------------------------------------------------------
SIMILARITY = {"format": SIM_FORMAT, "method": "cka", "matrix": [[0.1, 0.2], [0.3, None]], "row_names": ["a", "b"],
              "col_names": ["x", "y"], "scores": [0.2, 0.3], "selected": [1], "selection": {"rule": "row_max"},
              "settings": {"seed": 0}, "ancestry": {"arch": "lg_vit_tiny"}, "elapsed_s": 1.5,
              "created": "2025-01-01T00:00:00", "extras": {}}


def test_similarity_base_is_valid():
    result = SimilarityResult.from_dict(SIMILARITY)
    assert result.to_dict() == SIMILARITY  # every field read back as written
    assert result.array.shape == (2, 2) and result.selected == [1]


@FUZZ
@given(blob=any_file(SIMILARITY))
def test_similarity_json_is_a_result_or_a_checkpoint_error(scratch, blob):
    path = scratch() / "similarity.json"
    path.write_bytes(blob)
    try:
        result = SimilarityResult.load(path)
    except LearngeneError as exc:
        assert str(path) in str(exc)
        return
    result.summary()
    assert isinstance(result.to_dict(), dict)


def _block(v: float = 0.5) -> dict:
    return {"mean": v, "ci95": 0.1, "per_task": [v, v]}


PROBE = {
    "format": PROBE_FORMAT,
    "ancestry": {"arch": "lg_vit_tiny", "path": "a.safetensors", "sha256": "0" * 64},
    "settings": {"n_way": 5, "k_shot": 5, "tasks": 2, "epochs": 1, "lr": 0.01, "weight_decay": 0.0,
                 "batch_size": 8, "test_per_class": 4, "seed": 0, "data_seed": 0, "dataset": "shapes",
                 "device": "cpu", "batched": True},
    "layers": ["l0", "l1"],
    "chance": 0.2,
    "accuracy": {"baseline": _block(0.3), "stem": _block(0.4), "chosen": _block(0.6)},
    "stem_gain": _block(0.1),
    "single": [{"layer": 0, "name": "l0", "acc": _block(), "gain": _block()},
               {"layer": 1, "name": "l1", "acc": _block(), "gain": _block()}],
    "chosen": [1],
    "leave_one_out": [{"layer": 1, "name": "l1", "share": _block()}],
    "elapsed_s": 3.0,
    "created": "2025-01-01T00:00:00",
}


def test_probe_base_is_valid():
    result = ProbeResult.from_dict(PROBE)
    assert result.to_dict() == PROBE  # every field read back as written


@FUZZ
@given(blob=any_file(PROBE))
def test_probe_json_is_a_result_or_a_checkpoint_error(scratch, blob):
    path = scratch() / "probe.json"
    path.write_bytes(blob)
    try:
        result = ProbeResult.load(path)
    except LearngeneError as exc:
        assert str(path) in str(exc)
        return
    assert isinstance(result.to_dict(), dict)
