"""Bad inputs that used to crash with a traceback or end in a false success.

Each test fails on the code before its fix: a divergence on the last step reported as success,
unbounded counts (a billion tasks or images), a decompression bomb in a folder data set, a label
smoothing outside [0, 1), and unusable paths that gave raw OSError tracebacks.
"""

from __future__ import annotations

import contextlib
import copy
import math
import struct
import weakref
import zlib
from pathlib import Path

import pytest
import torch
from torch import nn

from learngene.cli import build_parser, main
from learngene.data import load_dataset, sample_task, sample_tasks
from learngene.data.sources import MAX_IMAGES_PER_CLASS
from learngene.data.tasks import MAX_TASKS
from learngene.descend.batched import train_batched
from learngene.errors import ConfigError, DataError, DivergedError
from learngene.models import create_model
from learngene.runlog import EXIT_DIVERGED, EXIT_USAGE, read_jsonl
from learngene.train.config import MAX_BATCH_SIZE, MAX_EPOCHS, TrainConfig
from learngene.train.trainer import Trainer, state_is_finite

TINY = ["--images-per-class", "30", "--k-shot", "2", "--test-per-class", "5", "--threads", "1", "--epochs", "1",
        "--device", "cpu"]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here trains with one torch thread (the CLI's default)."""


def train_argv(ancestry: Path, *extra: str) -> list[str]:
    return ["train", "--ancestry", str(ancestry), "--layers", "0", *TINY, *extra]


def one_line_error(capsys) -> str:
    """The CLI's error output, which must be one `error: ...` line (no traceback)."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


# ------------------------------------------------------------------ 1. divergence on the last step


def tiny_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


def _images(n: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8), torch.arange(n) % 3


def test_weights_made_infinite_by_the_only_step_mark_the_run_diverged():
    x, y = _images()  # one step per epoch: no later loss ever sees the broken weights
    cfg = TrainConfig(epochs=1, batch_size=12, lr=1e-3, weight_decay=1e300, device="cpu")
    tr = Trainer(tiny_cnn(), cfg, x, y)  # no test set either
    with pytest.raises(DivergedError, match="diverged"):
        tr.run()
    assert tr.history[-1]["diverged"] is True and math.isnan(tr.history[-1]["train_loss"])


def test_overflowing_test_loss_marks_the_run_diverged():
    torch.manual_seed(0)
    model = create_model("lg_vit_tiny", 3, depth=1, embed_dim=24, num_heads=2)
    x, y = _images()
    tr = Trainer(model, TrainConfig(epochs=1, batch_size=12, lr=1e30, device="cpu"), x, y, x, y)
    with pytest.raises(DivergedError):
        tr.run()
    assert state_is_finite(model)  # huge but finite weights: only the test loss shows it
    assert tr.history[-1]["diverged"] is True and "test_acc" not in tr.history[-1]


def test_batched_twin_agrees_on_last_step_divergence():
    x, y = _images()
    torch.manual_seed(0)
    models = [tiny_cnn() for _ in range(3)]
    cfgs = [TrainConfig(epochs=2, batch_size=12, device="cpu", **kw)
            for kw in (dict(lr=1e-3), dict(lr=1e-3, weight_decay=1e300), dict(lr=1e30))]
    ref = []
    for model, cfg in zip(copy.deepcopy(models), cfgs, strict=True):
        tr = Trainer(model, cfg, x, y, x, y)
        with contextlib.suppress(DivergedError):
            tr.run()
        ref.append(tr.history)
    got = train_batched(models, cfgs, [(x, y, x, y)] * 3)
    assert [len(h) for h in got] == [2, 1, 1] and [bool(h[-1].get("diverged")) for h in got] == [False, True, True]
    for want, have in zip(ref, got, strict=True):
        assert [(r["epoch"], r["step"], r.get("diverged"), list(r)) for r in want] == \
               [(r["epoch"], r["step"], r.get("diverged"), list(r)) for r in have]
        assert [r["lr"] for r in want] == pytest.approx([r["lr"] for r in have], rel=1e-12)


@pytest.mark.parametrize("extra", [["--lr", "1e30"], ["--weight-decay", "1e300"]])
def test_cli_train_diverging_on_the_last_step_exits_3(tmp_path, ancestry_file, capsys, extra):
    run = tmp_path / "run"
    rc = main(train_argv(ancestry_file, *extra, "--run-dir", str(run)))
    assert rc == EXIT_DIVERGED and "diverged" in capsys.readouterr().err
    records, _ = read_jsonl(run / "metrics.jsonl")
    pairs = [r for r in records if r["kind"] == "pair"]
    assert pairs and all(p["learngene"]["diverged"] and p["baseline"]["diverged"] for p in pairs)


def test_job_diverging_on_the_last_step_ends_diverged(tmp_path, ancestry_file):
    from learngene.jobs import JobManager, JobSpec

    mgr = JobManager(tmp_path / "runs", max_cpu_jobs=1)
    run_id = mgr.start(JobSpec(argv=train_argv(ancestry_file, "--lr", "1e30"), device="cpu"))
    info = mgr.wait(run_id, timeout=180)
    assert (info.state, info.exit_code) == ("diverged", EXIT_DIVERGED), info.log_tail


@pytest.mark.parametrize(("flag", "value", "field"), [
    ("--weight-decay", "inf", "weight_decay"), ("--weight-decay", "nan", "weight_decay"),
    ("--lr", "inf", "lr"), ("--lr", "nan", "lr"),
    ("--label-smoothing", "5", "label_smoothing"), ("--label-smoothing", "1", "label_smoothing"),
    ("--label-smoothing", "-0.1", "label_smoothing"), ("--label-smoothing", "nan", "label_smoothing"),
])
def test_non_finite_or_out_of_range_settings_are_refused_up_front(tmp_path, capsys, flag, value, field):
    # a missing ancestry proves the refusal comes before any loading
    rc = main(["train", "--ancestry", str(tmp_path / "missing.safetensors"), *TINY, flag, value])
    assert rc == EXIT_USAGE and (line := one_line_error(capsys)).startswith(f"error: {flag} must be "), line
    with pytest.raises(ConfigError, match=f"^{field} must be "):  # a library caller gets the field's name
        TrainConfig(**{field: float(value)}).validated()


@pytest.mark.parametrize(("argv", "expected"), [
    (["--epochs", "1000000000"], f"error: --epochs must be between 1 and {MAX_EPOCHS}, got 1000000000"),
    (["--epochs", "2", "--warmup-epochs", "5"], "error: --warmup-epochs must be smaller than --epochs"),
    (["--batch-size", "0"], f"error: --batch-size must be between 1 and {MAX_BATCH_SIZE}, got 0"),
])
def test_training_settings_are_named_as_typed(tmp_path, capsys, argv, expected):
    rc = main(["train", "--ancestry", str(tmp_path / "missing.safetensors"), *TINY, *argv])
    assert rc == EXIT_USAGE and one_line_error(capsys) == expected


# ------------------------------------------------------------------ 2. unbounded counts, lazy tasks


def test_a_billion_tasks_is_refused_in_one_line_before_any_work(tmp_path, capsys):
    rc = main(["train", "--ancestry", str(tmp_path / "missing.safetensors"), *TINY, "--tasks", "1000000000"])
    assert rc == EXIT_USAGE and "--tasks" in (line := one_line_error(capsys)) and str(MAX_TASKS) in line


def test_a_billion_images_per_class_is_refused_in_one_line(tmp_path, capsys):
    rc = main(["data", "info", "--images-per-class", "1000000000"])
    assert rc == EXIT_USAGE and str(MAX_IMAGES_PER_CLASS) in one_line_error(capsys)
    with pytest.raises(ConfigError, match="GiB"):  # each bound allowed, the product too big for memory
        load_dataset("shapes", images_per_class=MAX_IMAGES_PER_CLASS, image_size=256, cache=False)
    rc = main(["data", "preview", "--out", str(tmp_path / "x.png"), "--scale", "100000"])
    assert rc == EXIT_USAGE and "--scale" in one_line_error(capsys)


@pytest.mark.parametrize("argv, option", [
    (["data", "info", "--images-per-class", "1000000000"], "--images-per-class"),
    (["data", "info", "--image-size", "100000"], "--image-size"),
    (["data", "preview", "--out", "OUT/x.png", "--images-per-class", "0"], "--images-per-class"),
    (["condense", "--images-per-class", "1000000000"], "--images-per-class"),
    (["advantages", "--quick", "--out", "OUT/study", "--images-per-class", "1000000000"], "--images-per-class"),
])
def test_data_bounds_name_the_option_the_user_typed(tmp_path, capsys, argv, option):
    rc = main([a.replace("OUT", str(tmp_path)) for a in argv])
    line = one_line_error(capsys)
    assert rc == EXIT_USAGE and line.startswith(f"error: {option} must be a whole number from "), line
    assert "images_per_class" not in line and "image_size" not in line, line


def test_the_memory_bound_names_the_options_typed_and_the_library_its_parameters(capsys):
    from learngene.data.sources import option_names

    rc = main(["data", "info", "--images-per-class", str(MAX_IMAGES_PER_CLASS), "--image-size", "256"])
    line = one_line_error(capsys)
    assert rc == EXIT_USAGE and line.endswith("lower --images-per-class or --image-size"), line
    # A library caller gets the parameter names, also after a command named its options (and failed).
    with pytest.raises(ConfigError, match="^images_per_class must be a whole number from 1 to"):
        load_dataset("shapes", images_per_class=10**9)
    with pytest.raises(ConfigError, match="lower images_per_class or image_size$"):
        load_dataset("shapes", images_per_class=MAX_IMAGES_PER_CLASS, image_size=256, cache=False)
    with pytest.raises(ConfigError, match="^--ipc must be"), option_names(images_per_class="--ipc"):
        load_dataset("shapes", images_per_class=0)
    with pytest.raises(ConfigError, match="^image_size must be"):
        load_dataset("shapes", image_size=2)


def test_help_names_the_maxima():
    parser = build_parser("train")
    text = parser._subparsers._group_actions[0].choices["train"].format_help()
    for flag, limit in (("--tasks", MAX_TASKS), ("--images-per-class", MAX_IMAGES_PER_CLASS),
                        ("--epochs", MAX_EPOCHS), ("--batch-size", MAX_BATCH_SIZE)):
        assert flag in text and f"at most {limit}" in " ".join(text.split()), flag


def test_sample_tasks_builds_each_task_when_reached(shapes30):
    with pytest.raises(ConfigError, match=str(MAX_TASKS)):
        sample_tasks(shapes30, MAX_TASKS + 1, k_shot=2, test_per_class=5)
    tasks = sample_tasks(shapes30, 20, k_shot=2, test_per_class=5)
    alive = []
    for i, task in enumerate(tasks):
        assert task.index == i and torch.equal(task.train_index, sample_task(shapes30, k_shot=2, seed=0,
                                                                             test_per_class=5, index=i).train_index)
        alive.append(weakref.ref(task))
        del task
        assert sum(ref() is not None for ref in alive) <= 1  # no earlier task is kept
    assert len(tasks) == 20 and tasks[-1].index == 19
    with pytest.raises(DataError, match=r"only 30 image\(s\)"):  # every task is still checked up front
        sample_tasks(shapes30, 20, k_shot=30)


@pytest.fixture(scope="module")
def shapes30():
    return load_dataset("shapes", images_per_class=30)


# ------------------------------------------------------------------ 3. a decompression bomb in a folder data set


def png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming width x height 1-bit pixels, with a tiny (empty) image body: a cheap bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_decompression_bomb_is_skipped_and_counted(tmp_path, capsys):
    from PIL import Image

    for c in range(3):
        (tmp_path / f"class{c}").mkdir()
        for i in range(3):
            Image.new("RGB", (8, 8), (40 * c, 20 * i, 0)).save(tmp_path / f"class{c}" / f"{i}.png")
    (tmp_path / "class0" / "bomb.png").write_bytes(png_header_only(20000, 20000))
    ds = load_dataset(f"folder:{tmp_path}", image_size=8)
    assert len(ds) == 9 and ds.skipped == 1
    assert ds.meta["skipped_files"] == ["class0/bomb.png (too many pixels (a decompression bomb?))"]
    assert main(["data", "info", "--dataset", f"folder:{tmp_path}"]) == 0
    assert "skipped: class0/bomb.png" in capsys.readouterr().out


# ------------------------------------------------------------------ 5. unusable paths


@pytest.mark.parametrize(("argv", "needle"), [
    (["jobs", "--runs-dir", "{file}", "list"], "--runs-dir {file} is a file"),
    (["jobs", "--runs-dir", "{file}", "start", "--", "selftest"], "--runs-dir {file} is a file"),
    (["jobs", "--runs-dir", "{file}/sub", "show", "x"], "lies under {file}, which is a file"),
    (["inherit", "--out", "{file}/x.safetensors"], "its folder {file} is a file"),
    (["inherit", "--out", "{dir}.safetensors"], "is a folder; a file path is needed"),
    (["inherit", "--out", "/proc/nope/x.safetensors"], "/proc/nope cannot be created"),
    (["data", "preview", "--out", "{file}/grid.png"], "its folder {file} is a file"),
])
def test_unusable_paths_get_one_line_errors(tmp_path, capsys, argv, needle):
    file, folder = tmp_path / "a-file", tmp_path / "a-folder"
    file.write_text("not a folder")
    (tmp_path / "a-folder.safetensors").mkdir()
    fill = {"file": str(file), "dir": str(folder)}
    rc = main([a.format(**fill) for a in argv])
    assert rc == EXIT_USAGE and needle.format(**fill) in one_line_error(capsys)


def test_train_checks_its_output_folders_before_any_work(tmp_path, capsys):
    file = tmp_path / "a-file"
    file.write_text("not a folder")
    missing = str(tmp_path / "missing.safetensors")  # a refusal after the path check would name this
    for flag in ("--save-models", "--run-dir"):
        rc = main(["train", "--ancestry", missing, *TINY, flag, str(file)])
        assert rc == EXIT_USAGE and f"{flag} {file} is a file" in one_line_error(capsys)
    rc = main(["sweep", "--ancestry", missing, "--run-dir", str(file / "run")])
    assert rc == EXIT_USAGE and "which is a file" in one_line_error(capsys)


@pytest.mark.parametrize("command", ["condense", "probe", "advantages", "accumulate"])
@pytest.mark.parametrize("flag", ["--out", "--run-dir"])
def test_every_writing_command_checks_its_paths_before_any_work(tmp_path, capsys, command, flag):
    file = tmp_path / "a-file"
    file.write_text("not a folder")
    missing = str(tmp_path / "missing.safetensors")  # a refusal after the path check would name this
    nowhere = f"folder:{tmp_path / 'no-data'}"  # ... or this data set
    argv = {"condense": ["condense", "--ancestry", missing, "--dataset", nowhere],
            "probe": ["probe", "--ancestry", missing, "--dataset", nowhere, "--threads", "1"],
            "advantages": ["advantages", "--ancestry", missing, "--quick", "--threads", "1"],
            "accumulate": ["accumulate", "--dataset", nowhere, "--epochs", "1"]}[command]
    rc = main([*argv, flag, str(file / "x")])
    assert rc == EXIT_USAGE and f"{flag} {file / 'x'}" in (line := one_line_error(capsys)), line
    assert f"{file} is a file" in line or f"under {file}, which is a file" in line


@pytest.mark.parametrize("batched", ["off", "on"])
def test_sweep_builds_each_task_when_it_reaches_it(shapes30, monkeypatch, batched):
    import learngene.data.tasks as tasks_module
    import learngene.descend.sweep as sweep_module
    from learngene.descend.sweep import SweepConfig, run_sweep

    events, real_sample_task = [], tasks_module.sample_task

    def recording_sample_task(*args, **kwargs):
        events.append(("build", kwargs["index"]))
        return real_sample_task(*args, **kwargs)

    def fake_pair(recipe, source, task, cfg, reporter, seed, tags):
        events.append(("train", task.index, cfg.lr, seed))
        return (task.index, cfg.lr, seed)

    def fake_group(recipe, source, jobs, reporter):
        return [fake_pair(recipe, source, j.task, j.cfg, reporter, j.seed, j.tags) for j in jobs]

    monkeypatch.setattr(tasks_module, "sample_task", recording_sample_task)
    monkeypatch.setattr(sweep_module, "train_pair", fake_pair)
    monkeypatch.setattr(sweep_module, "_train_group_batched", fake_group)
    monkeypatch.setattr(sweep_module, "use_batched", lambda *a: (batched == "on", ""))
    sweep = SweepConfig(lrs=[1e-3, 2e-3], seeds=[0, 1], shots=[2], tasks=3, test_per_class=5, batched=batched,
                        max_batch=8)
    results = run_sweep(None, None, shapes30, sweep, TrainConfig(device="cpu", epochs=1))
    grid = [(lr, seed) for lr in (1e-3, 2e-3) for seed in (0, 1)]
    assert results == [(t, lr, seed) for t in range(3) for lr, seed in grid]  # the order of the runs is kept
    builds = [i for i, e in enumerate(events) if e[0] == "build"]
    assert [events[i][1] for i in builds] == [0, 1, 2]
    assert builds == [0, 5, 10]  # each task is built once the runs of the one before it have trained
