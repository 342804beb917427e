"""A fair share of the device slots: the next free slot goes to the waiter whose owner has the fewest runs
going (oldest first among equals), not simply to the oldest waiter."""

from __future__ import annotations

from collections import Counter

from learngene.jobs.fairqueue import HOST, my_turn, owner_of, running_by_owner
from tests.test_jobs import first_record, make_manager, start  # noqa: F401 - make_manager is a fixture


def test_the_turn_goes_to_the_owner_with_fewer_runs_going():
    running = Counter({"ann": 1})
    # ann queued first but has a run going; bob has none: bob's turn, not ann's
    assert my_turn((3, "r3"), "bob", [(2, "ann")], running)
    assert not my_turn((2, "r2"), "ann", [(3, "bob")], running)
    # equals: the older ticket first; one person's own runs keep their order
    assert my_turn((2, "r2"), "ann", [(3, "bob")], Counter())
    assert not my_turn((3, "r3"), "bob", [(2, "ann")], Counter())
    assert not my_turn((4, "r4"), "ann", [(2, "ann")], running)
    assert my_turn((1, "r1"), "ann", [], running)


def test_owner_of_a_command_line_run_is_the_host():
    assert owner_of({"spec": {"owner": None}}) == HOST == owner_of(None) == owner_of({"spec": {}})
    assert owner_of({"spec": {"owner": "abc"}}) == "abc"


def test_a_person_with_a_run_going_waits_behind_one_with_none(make_manager):  # noqa: F811 - the fixture
    mgr = make_manager(max_cpu_jobs=2)
    long = ["selftest", "--records", "1", "--sleep", "30"]
    ann_first, bob_first = start(mgr, long, owner="ann"), start(mgr, long, owner="bob")
    first_record(mgr, ann_first)
    first_record(mgr, bob_first)
    assert running_by_owner(mgr.runs_dir, "cpu") == Counter({"ann": 1, "bob": 1})
    ann_second = start(mgr, ["selftest", "--records", "1", "--sleep", "30"], owner="ann")
    carl = start(mgr, ["selftest", "--records", "1"], owner="carl")
    assert [mgr.get(r).state for r in (ann_second, carl)] == ["queued", "queued"]
    mgr.cancel(bob_first)
    # carl queued after ann's second run but goes first: ann has a run going, carl none
    carl_info = mgr.wait(carl, timeout=60)
    assert carl_info.state == "done"
    ann_info = first_record(mgr, ann_second)  # it started once carl's run had freed the slot
    assert carl_info.started_at < ann_info.started_at and carl_info.ended_at <= ann_info.started_at
    for run in (ann_first, ann_second):
        mgr.cancel(run)
