"""One server, a whole class: per-person choices, run ownership and the host, fair limits, writes that stay
inside, links that name only what a person could pick, and the Class board. AppTest tests on the tiny
ancestry of tests/test_app.py (each `person` token is one browser), plus unit tests of the Streamlit-free
parts (`app.person.people`, `app.shared.server`, `app.shared.launch`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import require_module

require_module("streamlit")  # fails under CI when the app's stack is missing

from app.person import people  # noqa: E402
from app.shared import launch, server  # noqa: E402
from tests.test_app import (  # noqa: E402,F401 - env, tiny_ancestry: fixtures, used through `request`
    PERSON,
    TRAIN_SUMMARY,
    env,
    make_runs,
    new_session,
    open_page,
    saved_state,
    tiny_ancestry,
)

ANNA = "anna-token-000000000000000000000000000000000"
BOB = "bob-token-0000000000000000000000000000000000"


@pytest.fixture
def room(request) -> Path:
    """The runs folder of an app on the tiny ancestry (tests/test_app.py's `env`)."""
    return request.getfixturevalue("env")


@pytest.fixture
def anc(request) -> Path:
    return request.getfixturevalue("tiny_ancestry")


def pub(token: str) -> str:
    return people.public_id(token)


def host_token(runs: Path, token: str = PERSON) -> str:
    """Make `token`'s person the host of the studio in `runs` (as if they had opened the host link)."""
    made = server.new_secrets(runs, join=False)
    at = open_page("home", person=token, host=made["host_key"])
    assert "host" not in at.query_params, "the host key must leave the address"
    return made["host_key"]


# ------------------------------------------------------------------ per-person state


def test_two_people_keep_their_own_choices_and_a_new_one_starts_from_defaults(room):
    a = open_page("learngene", person=ANNA)
    a.multiselect(key="lg-multi").set_value([1, 2]).run()
    a = open_page("train", at=a)
    a.number_input(key="task-epochs").set_value(15).run()
    b = open_page("learngene", person=BOB)
    b.multiselect(key="lg-multi").set_value([0]).run()
    # each one's reload shows their own choices, never the other's
    assert open_page("learngene", person=ANNA).multiselect(key="lg-multi").value == [1, 2]
    assert open_page("learngene", person=BOB).multiselect(key="lg-multi").value == [0]
    assert open_page("train", person=ANNA).number_input(key="task-epochs").value == 15
    assert open_page("train", person=BOB).number_input(key="task-epochs").value != 15
    fresh = open_page("learngene", person="carl-token-00000000000000000000000000000000")
    assert fresh.multiselect(key="lg-multi").value == []
    assert saved_state(room, ANNA)["layers"] == [1, 2] and saved_state(room, BOB)["layers"] == [0]


def test_a_link_carries_choices_never_the_person(room):
    at = open_page("learngene", person=ANNA, layers="1,2")
    assert at.multiselect(key="lg-multi").value == [1, 2]
    assert set(at.query_params) <= {"layers", "ancestry", "sim", "watch", "runs"}, dict(at.query_params)
    assert not any(ANNA in str(v) or pub(ANNA) in str(v) for v in at.query_params.values())


def test_person_store_is_bounded_and_expires(tmp_path):
    store = people.PersonStore(tmp_path, max_entries=3, max_bytes=2000, max_age_s=3600)
    ids = [pub(f"person-{i:02d}-" + "0" * 30) for i in range(5)]
    for i, p in enumerate(ids):
        store.save(p, {"name": f"p{i}"})
        os.utime(store.path(p), (time.time() - 100 + i, time.time() - 100 + i))  # older first
    assert sorted(f.stem for f in tmp_path.glob("*.json")) == sorted(ids[2:]), "the oldest past the bound go"
    os.utime(store.path(ids[2]), (time.time() - 7200, time.time() - 7200))
    assert store.load(ids[2]) == {}, "an expired record is not used"
    assert ids[2] in store.prune()
    with pytest.raises(ValueError, match="at most 2000 bytes"):
        store.save(ids[3], {"state": {"ui": {"x": "y" * 5000}}})
    assert store.load(ids[3]) == {"name": "p3"}, "an oversized record is refused, the old one kept"
    with pytest.raises(ValueError):
        store.path("../../etc/passwd")


# ------------------------------------------------------------------ runs are shared, ownership is not


def _live_run_of(room: Path, token: str, name: str) -> str:
    (run_id,) = make_runs(room, {"kind": "train", "sleep": 60, "wait": False, "person": token, "name": name})
    return run_id


def test_only_the_owner_and_the_host_may_cancel_or_rename_a_run(room):
    run_id = _live_run_of(room, ANNA, "anna's run")
    bob = open_page("runs", person=BOB)
    bob.multiselect(key="runs-pick").set_value([run_id]).run()
    keys = {getattr(b, "key", None) for b in bob.button}
    assert f"cancel-details-{run_id}" not in keys, "someone else's run has no cancel button"
    assert not [t for t in bob.text_input if t.key == f"ann-name-{run_id}"], "nor a rename form"
    assert any("someone else's" in c.value for c in bob.caption)
    table = bob.dataframe[0].value
    assert table.loc[table["run"] == run_id, "by"].iloc[0] == "guest-" + pub(ANNA)[:4]

    anna = open_page("runs", person=ANNA)
    anna.multiselect(key="runs-pick").set_value([run_id]).run()
    assert anna.text_input(key=f"ann-name-{run_id}") is not None

    host_token(room, BOB)  # Bob opens the host link: now he may
    bob = open_page("runs", person=BOB)
    bob.multiselect(key="runs-pick").set_value([run_id]).run()
    bob.button(key=f"cancel-details-{run_id}").click().run()
    from learngene.jobs import JobManager

    assert JobManager(room).wait(run_id, timeout=30).state == "cancelled"


def test_a_wrong_host_key_gives_nothing(room):
    server.new_secrets(room, join=False)
    at = open_page("home", person=BOB, host="not-the-key")
    path = room / ".studio" / "people" / f"{pub(BOB)}.json"
    assert not (json.loads(path.read_text()) if path.exists() else {}).get("host")
    assert "host" not in at.query_params
    assert [b for b in at.button if b.key == "host-go"] or at.text_input(key="host-key") is not None


def test_display_name_shows_on_the_persons_runs(room):
    at = open_page("home", person=ANNA)
    at.text_input(key="person-name").set_value("Anna K").run()
    at.button(key="person-name-go").click().run()
    run_id = _live_run_of(room, ANNA, "named")
    bob = open_page("runs", person=BOB)
    table = bob.dataframe[0].value
    assert table.loc[table["run"] == run_id, "by"].iloc[0] == "Anna K"
    assert open_page("runs", person=ANNA).dataframe[0].value.loc[lambda t: t["run"] == run_id, "by"].iloc[0] == "you"


# ------------------------------------------------------------------ fair limits


def _spec(i: int, owner: str):
    from learngene.jobs import JobSpec

    return JobSpec(argv=["selftest", "--records", "1", "--sleep", str(60 + i)], kind="test", owner=owner)


def test_a_start_beyond_the_persons_limit_is_refused_with_the_reason_and_the_host_can_raise_it(tmp_path):
    from learngene.jobs import JobManager

    runs = tmp_path / "runs"
    mgr = JobManager(runs, max_cpu_jobs=1)
    lim = server.Limits(running=1, queued=1, server=10)
    try:
        for i in range(2):
            launch.start_once(mgr, _spec(i, pub(ANNA)), limits=lim)
        with pytest.raises(launch.LimitReached, match=r"you already have 2 run\(s\).*1 running \+ 1 queued"):
            launch.start_once(mgr, _spec(5, pub(ANNA)), limits=lim)
        twin, started = launch.start_once(mgr, _spec(0, pub(BOB)), limits=lim)  # joining a live run: allowed
        assert not started
        assert launch.start_once(mgr, _spec(6, pub(BOB)), limits=lim)[1], "another person is not held back"
        server.set_person_limits(runs, pub(ANNA), running=1, queued=3)  # the host raises Anna's limit
        raised = server.person_limits(runs, pub(ANNA))
        assert raised.per_person == 4 and launch.start_once(mgr, _spec(7, pub(ANNA)), limits=raised)[1]
        with pytest.raises(launch.LimitReached, match="the server already has 4 runs"):
            launch.start_once(mgr, _spec(8, pub(BOB)), limits=server.Limits(running=5, queued=5, server=4))
    finally:
        for run_id in mgr.cancel_all():
            mgr.wait(run_id, timeout=30)


def test_host_raises_a_persons_limit_on_the_board(room):
    host_token(room, ANNA)
    _live_run_of(room, BOB, "bob's")  # Bob started a run: the host sees him
    at = open_page("board", person=ANNA)
    at.selectbox(key="board-person").set_value(pub(BOB)).run()
    at.number_input(key=f"lim-q-{pub(BOB)}").set_value(5).run()
    at.button(key="board-limit").click().run()
    assert server.person_limits(room, pub(BOB)).queued == 5
    assert server.person_limits(room, pub(ANNA)).queued == server.Limits().queued


# ------------------------------------------------------------------ writes stay inside


def test_an_export_path_outside_the_export_root_is_refused(tmp_path):
    from app.ui.export_ui import export_targets
    from learngene.errors import ConfigError

    root = tmp_path / "exports" / "me"
    assert export_targets(root, "tb", "ml", host=False)[0] == (root / "tb").resolve()
    for bad in ("../../elsewhere", "/tmp/outside", str(tmp_path)):
        with pytest.raises(ConfigError, match="inside"):
            export_targets(root, bad, "", host=False)
    (root).mkdir(parents=True)
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="inside"):
        export_targets(root, "link/x", "", host=False)
    with pytest.raises(ConfigError, match="host only"):
        export_targets(root, "", "http://127.0.0.1:5000", host=False)
    assert export_targets(root, "", "http://127.0.0.1:5000", host=True)[1] == "http://127.0.0.1:5000"


def test_an_upload_over_the_size_bound_is_refused(room, monkeypatch):
    from app.person import ancestries
    from learngene.errors import ConfigError

    class Upload:
        def __init__(self, name: str, data: bytes):
            self.name, self._data, self.size = name, data, len(data)

        def getvalue(self) -> bytes:
            return self._data

    monkeypatch.setenv("LEARNGENE_MAX_UPLOAD_MB", "0.001")  # about 1 KB
    with pytest.raises(ConfigError, match="uploads are at most"):
        ancestries.import_upload([Upload("big.safetensors", b"x" * 4096)], arch="lg_vit_tiny")
    assert not list((room / ".uploads").rglob("*.safetensors")) if (room / ".uploads").exists() else True


# ------------------------------------------------------------------ links name only what a person could pick


def test_a_link_to_another_path_is_dropped_with_one_message_whatever_the_path(room):
    shown = []
    for path in ("/etc/passwd", "/root/.ssh/id_rsa", "/no/such/file"):
        at = new_session(BOB, ancestry=path)
        at.run()
        shown.append([i.value for i in at.info])
        path = room / ".studio" / "people" / f"{pub(BOB)}.json"
        assert not path.exists() or saved_state(room, BOB)["ancestry"] == ""
    assert shown[0] == shown[1] == shown[2] and any("not in this studio's list" in v for v in shown[0])


def test_a_link_with_impossible_layers_keeps_the_possible_ones_and_says_so(room):
    at = new_session(BOB, layers="999,-1,abc,2")
    at.run()
    said = [i.value for i in at.info]
    assert any("999, -1, abc were ignored" in v or "-1, abc, 999 were ignored" in v for v in said), said
    assert open_page("learngene", at=at).multiselect(key="lg-multi").value == [2]


def test_a_run_name_with_markdown_is_shown_as_text(room):
    run_id = _live_run_of(room, BOB, "![px](http://127.0.0.1:8799/track.png) **bold**")
    at = open_page("runs", person=BOB)
    at.multiselect(key="runs-pick").set_value([run_id]).run()
    rendered = [m.value for m in at.markdown] + [e.label for e in at.expander] + [p.proto.text for p in at.get("progress")]
    assert rendered and not any("![px](" in v for v in rendered), rendered
    assert any(r"\!\[px\]" in v for v in rendered)


# ------------------------------------------------------------------ the class board


def _finished_train(room: Path, token: str, ancestry: Path, layers: str, gain: float) -> str:
    from learngene.jobs import JobManager, JobSpec

    mgr = JobManager(room, max_cpu_jobs=2)
    run_id = mgr.start(JobSpec(argv=["selftest", "--records", "1"], kind="train", name=f"layers {layers}",
                               owner=pub(token)))
    assert mgr.wait(run_id, timeout=60).state == "done"
    folder = mgr.run_dir(run_id)
    cfg = json.loads((folder / "config.json").read_text())  # the board reads the command's --ancestry/--layers
    cfg["spec"]["argv"] = ["train", "--ancestry", str(ancestry), "--layers", layers]
    (folder / "config.json").write_text(json.dumps(cfg))
    summary = json.loads(json.dumps(TRAIN_SUMMARY))
    summary["summary"]["gain"] = {**(summary["summary"].get("gain") or {}), "mean": gain, "ci95": 0.05, "n": 5}
    summary["summary"]["pairs"] = 5
    (folder / "outputs" / "summary.json").write_text(json.dumps(summary))
    return run_id


def test_class_board_lists_peoples_runs_and_the_answer_key_only_after_the_host_reveals_it(room, anc):
    a = _finished_train(room, ANNA, anc, "0,1", 0.20)
    b = _finished_train(room, BOB, anc, "2,3", -0.05)
    probe = {"format": "learngene.probe/1", "layers": [f"blocks.{i}" for i in range(4)], "chosen": [0, 1],
             "single": [{"layer": i, "name": f"blocks.{i}", "gain": {"mean": g, "ci95": 0.02}}
                        for i, g in enumerate([0.3, 0.1, 0.0, -0.1])]}
    anc.with_suffix(".probe.json").write_text(json.dumps(probe))
    try:
        at = open_page("board", person=BOB)
        table = next(d.value for d in at.dataframe if "who" in d.value.columns)
        rows = {r["run"]: r for r in table.to_dict("records")}
        assert rows[a]["layers"] == "0,1" and rows[b]["layers"] == "2,3"
        assert rows[b]["who"] == "you" and rows[a]["who"] == "guest-" + pub(ANNA)[:4]
        assert rows[a]["gain"] == pytest.approx(0.20) and rows[a]["gain low"] == pytest.approx(0.15)
        assert not any("measured gain" in d.value.columns for d in at.dataframe), "hidden before the reveal"
        assert not [x for x in at.button if x.key == "board-reveal"], "only the host may reveal it"

        host_token(room, ANNA)
        host = open_page("board", person=ANNA)
        host.button(key="board-reveal").click().run()
        at = open_page("board", person=BOB)
        key = next(d.value for d in at.dataframe if "measured gain" in d.value.columns)
        assert list(key["chosen by runs"]) == [1, 1, 1, 1] and key["measured gain"].iloc[0] == pytest.approx(0.3)
    finally:
        anc.with_suffix(".probe.json").unlink(missing_ok=True)


# ------------------------------------------------------------------ the join gate and the launcher


def test_is_loopback():
    assert server.is_loopback("127.0.0.1") and server.is_loopback("::1") and server.is_loopback("localhost")
    assert not server.is_loopback("0.0.0.0") and not server.is_loopback("") and not server.is_loopback("10.1.2.3")


def test_launcher_prints_host_and_join_links_and_stores_only_hashes(tmp_path, monkeypatch, capsys):
    from app.shared import serve

    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(tmp_path / "runs"))
    assert serve.main(["--host", "0.0.0.0", "--port", "8765", "--print-only"]) == 0
    out = capsys.readouterr().out
    key = out.split("?host=")[1].split()[0]
    code = out.split("?join=")[1].split()[0]
    stored = (tmp_path / "runs" / ".studio" / "server.json").read_text()
    assert key not in stored and code not in stored
    assert oct((tmp_path / "runs" / ".studio" / "server.json").stat().st_mode & 0o777) == "0o600"
    data = server.read(tmp_path / "runs")
    assert server.matches(key, data["host_key_sha256"]) and server.matches(code, data["join_code_sha256"])
    assert not server.matches(code + "x", data["join_code_sha256"])
    assert serve.main(["--host", "127.0.0.1", "--print-only"]) == 0
    assert "join" not in capsys.readouterr().out and "join_code_sha256" not in server.read(tmp_path / "runs")


def test_an_upload_whose_card_lies_is_refused_before_anything_is_built(room, anc):
    """A hostile card (a huge head) or a card of other weights: refused from the shapes and the hash alone."""
    import resource

    from app.person import ancestries
    from learngene.errors import CheckpointError

    class Upload:
        def __init__(self, name: str, data: bytes):
            self.name, self._data, self.size = name, data, len(data)

        def getvalue(self) -> bytes:
            return self._data

    weights = anc.read_bytes()
    card = json.loads(anc.with_suffix(".json").read_text())
    huge = json.loads(json.dumps(card))
    huge["spec"]["num_classes"] = 5_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises((CheckpointError, ValueError)):
        ancestries.import_upload([Upload("a.safetensors", weights), Upload("a.json", json.dumps(huge).encode())])
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300, f"the hostile card cost {grown_mb:.0f} MB before it was refused"
    other = {**card, "sha256": "0" * 64}
    with pytest.raises(CheckpointError, match="sha256 differs"):
        ancestries.import_upload([Upload("a.safetensors", weights), Upload("a.json", json.dumps(other).encode())])
    assert not [p for p in (room / ".uploads").rglob("*.safetensors")] if (room / ".uploads").exists() else True


def test_two_tabs_of_one_person_do_not_undo_each_others_changes(room):
    tab1 = open_page("train", person=ANNA)
    tab2 = open_page("learngene", person=ANNA)  # opened before tab 1's change
    tab1.number_input(key="task-epochs").set_value(21).run()
    tab2.multiselect(key="lg-multi").set_value([0, 3]).run()  # tab 2's copy has no epochs 21
    saved = saved_state(room, ANNA)
    assert saved["ui"].get("task-epochs") == 21 and saved["layers"] == [0, 3], saved
    assert open_page("train", person=ANNA).number_input(key="task-epochs").value == 21


def test_train_page_holds_an_ancestry_at_chance_until_use_anyway(room, anc, monkeypatch, tmp_path):
    """The Train page's start buttons wait for "use anyway" on an ancestry recorded at chance, then pass --force."""
    import shutil

    chancy = tmp_path / "chancy.safetensors"
    shutil.copy(anc, chancy)
    card = json.loads(anc.with_suffix(".json").read_text())
    card["base_accuracy"], card["epochs"] = 1 / 64, 5  # trained, and at chance on 64 base classes
    card.setdefault("extra", {})["holdout_per_class"] = 50
    chancy.with_suffix(".json").write_text(json.dumps(card))
    monkeypatch.setenv("LEARNGENE_ANCESTRY", str(chancy))
    at = open_page("train", layers="0,1")
    assert any("at chance" in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="train-go").disabled
    at.checkbox(key="train-use-anyway").check().run()
    assert not at.button(key="train-go").disabled
    at.button(key="train-go").click().run()
    from learngene.jobs import JobManager

    mgr = JobManager(room)
    (info,) = mgr.list(kind="train")
    assert "--force" in info.spec.argv
    mgr.cancel(info.run_id)
    mgr.wait(info.run_id, timeout=30)


def test_a_links_layer_text_is_shown_as_text(room):
    at = new_session(BOB, layers="![](//e.co),1")
    at.run()
    said = " ".join(i.value for i in at.info)
    assert "ignored" in said and "![](" not in said, said
