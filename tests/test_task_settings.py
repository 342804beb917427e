"""One task-settings object: the probe, sweep, size study and advantages study share its fields, names and
checks; settings written under the older names still load; one rule for --batched auto/on/off."""

from __future__ import annotations

import pytest

from learngene.descend.advantages import Study, study_from_options
from learngene.descend.probe import ProbeConfig
from learngene.descend.sizes import Size, SizeStudy
from learngene.descend.sweep import SweepConfig
from learngene.errors import ConfigError
from learngene.train.settings import TaskSettings, TaskTraining, batched_wanted, renamed


def test_every_study_has_the_shared_fields_under_one_name():
    shared = TaskTraining.field_names()
    for cls in (ProbeConfig, SizeStudy, Study):
        assert issubclass(cls, TaskTraining) and shared <= set(cls.__dataclass_fields__), cls
    assert issubclass(SweepConfig, TaskSettings) and TaskSettings.field_names() <= set(SweepConfig.__dataclass_fields__)
    for cls in (ProbeConfig, SizeStudy, Study, SweepConfig):
        assert not {"n_tasks", "wd", "k_main", "img_size"} & set(cls.__dataclass_fields__), cls


def test_settings_under_older_names_still_load():
    assert renamed({"n_tasks": 3, "wd": 0.1, "k_main": 5, "lr": 1}) == {"tasks": 3, "weight_decay": 0.1, "k_shot": 5,
                                                                          "lr": 1}
    assert SweepConfig.from_dict({"n_tasks": 3, "lrs": [1e-3]}).tasks == 3
    s = study_from_options(n_tasks=4, k_main=5, wd=0.5, shots=(1, 5), wds=(0.05, 0.5))
    assert (s.tasks, s.k_shot, s.weight_decay) == (4, 5, 0.5)
    with pytest.raises(ConfigError, match="older name of tasks"):
        renamed({"n_tasks": 3, "tasks": 4})


def test_one_check_with_one_message_everywhere():
    for make in (lambda: ProbeConfig(n_way=1).validated(), lambda: SweepConfig(n_way=1).validated(),
                 lambda: study_from_options(n_way=1)):
        with pytest.raises(ConfigError, match=r"--n-way must be at least 2, got 1"):
            make()
    with pytest.raises(ConfigError, match=r"--weight-decay must be >= 0"):
        study_from_options(weight_decay=-1.0)
    with pytest.raises(ConfigError, match=r"--lr must be a positive number"):
        SizeStudy(sizes=(Size(),), layers=(0,), lr=float("nan")).check_training()


def test_a_sweep_without_shots_trains_its_k_shot():
    assert SweepConfig(k_shot=7).shots == [7]
    assert SweepConfig(k_shot=7, shots=[1, 2]).runs == 2


@pytest.mark.parametrize(("choice", "device", "want"), [("on", "cpu", True), ("auto", "cpu", False),
                                                        ("auto", "cuda", True), ("off", "cuda", False)])
def test_one_batched_rule(choice, device, want):
    assert batched_wanted(choice, device) is want


def test_a_bad_batched_choice_is_refused_by_every_study():
    with pytest.raises(ConfigError, match="batched must be auto, on or off"):
        batched_wanted("sometimes", "cpu")
    with pytest.raises(ConfigError, match="batched must be auto, on or off"):
        ProbeConfig(batched="sometimes").validated()
    with pytest.raises(ConfigError, match="batched must be auto, on or off"):
        SweepConfig(batched="sometimes").validated()
