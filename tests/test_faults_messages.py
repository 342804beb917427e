"""Error messages that misled: each test fails on the wording before its fix.

A .pth holding pickled code was called "corrupt" and passed on torch's advice to turn the weights-only
check off; a folder named like a file was "missing"; messages named settings the user cannot type
(num_classes, holdout_per_class, verify=False, --arch on `train`); `accumulate --epochs 1` failed on a
warmup the user never set.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from learngene.cli import build_parser, main
from learngene.condense.result import SimilarityResult
from learngene.errors import CheckpointError
from learngene.inherit.learngene_file import load_learngene
from learngene.models import (
    create_model,
    load_checkpoint,
    load_weights,
    read_card,
)
from learngene.runlog import EXIT_USAGE

REFUSED = "refused: this .pth contains pickled code, not only tensors; Learngene Studio loads weights only"


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here trains with one torch thread (the CLI's default)."""


def one_line_error(capsys) -> str:
    """The CLI's error output, which must be one `error: ...` line (no traceback)."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


def option_exists(argv: list[str], option: str) -> bool:
    """Whether `python -m learngene *argv --help` lists `option` (a hint must name a real option)."""
    parser = build_parser(only=argv[0])
    p = parser
    for name in argv:
        p = next(a for a in p._actions if a.dest in ("command", "models_command")).choices[name]
    return any(option in a.option_strings for a in p._actions)


# ------------------------------------------------------------------ 1. a .pth with pickled code


class CallsCode:
    """Pickles as a call of os.getcwd (harmless), from a module torch blocks outright."""

    def __reduce__(self):
        return (os.getcwd, ())


class LocalClass:
    """Pickles as a reference to this test module's class: torch's message for it has ANSI codes."""


@pytest.fixture(params=["blocked-call", "unknown-class"])
def code_pth(request, tmp_path) -> Path:
    path = tmp_path / "evil.pth"
    payload = CallsCode() if request.param == "blocked-call" else LocalClass()
    torch.save({"weight": torch.zeros(2), "payload": payload}, path)
    return path


def check_refusal(msg: str) -> None:
    assert REFUSED in msg, msg
    assert "weights_only" not in msg and "weights only load" not in msg.lower(), msg
    assert "\x1b" not in msg and "corrupt" not in msg, msg


def test_pickled_code_is_refused_by_the_loader(code_pth):
    with pytest.raises(CheckpointError) as info:
        load_weights(create_model("lg_resnet_mini", 8), code_pth)
    check_refusal(str(info.value))


def test_pickled_code_is_refused_by_the_cli(code_pth, capsys):
    rc = main(["models", "layers", str(code_pth), "--arch", "lg_resnet_mini", "--num-classes", "8"])
    assert rc != 0
    check_refusal(one_line_error(capsys))


def test_a_corrupt_pth_is_still_called_corrupt_without_the_weights_only_advice(tmp_path):
    path = tmp_path / "half.pth"
    torch.save({"weight": torch.zeros(100)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="corrupt, truncated") as info:
        load_weights(create_model("lg_resnet_mini", 8), path)
    assert "weights_only" not in str(info.value)


# ------------------------------------------------------------------ 2. a folder named like a file


def test_a_folder_named_like_a_checkpoint_is_called_a_directory(tmp_path, capsys):
    folder = tmp_path / "x.safetensors"
    folder.mkdir()
    for load in (lambda: load_checkpoint(folder), lambda: load_weights(create_model("lg_resnet_mini", 8), folder),
                 lambda: load_learngene(folder), lambda: SimilarityResult.load(tmp_path / "x.safetensors")):
        with pytest.raises(CheckpointError) as info:
            load()
        assert "is a directory" in str(info.value) and "does not exist" not in str(info.value)
    sim = tmp_path / "similarity.json"
    sim.mkdir()
    with pytest.raises(CheckpointError, match="is a directory"):
        SimilarityResult.load(sim)
    assert main(["models", "layers", str(folder)]) != 0
    assert "is a directory" in one_line_error(capsys)


def test_a_missing_file_is_still_missing(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist; create one"):
        load_learngene(tmp_path / "none.safetensors")


# ------------------------------------------------------------------ 3. the options the user typed


def test_train_names_n_way(capsys):
    rc = main(["train", "--n-way", "1", "--epochs", "1", "--device", "cpu", "--images-per-class", "30"])
    assert rc == EXIT_USAGE
    msg = one_line_error(capsys)
    assert "--n-way must be at least 2" in msg and "num_classes" not in msg, msg


def test_condense_names_the_holdout_setting_as_typed(ancestry_file, tmp_path, capsys):
    rc = main(["condense", "--ancestry", str(ancestry_file), "--images-per-class", "30", "--no-pd-cache",
               "--device", "cpu", "--out", str(tmp_path / "sim.json")])
    assert rc != 0
    msg = one_line_error(capsys)
    assert "--set holdout_per_class=N" in msg, msg
    assert option_exists(["condense"], "--set")


def test_accumulate_names_its_holdout_option(tmp_path, capsys):
    rc = main(["accumulate", "--arch", "lg_resnet_mini", "--images-per-class", "10", "--holdout-per-class", "20",
               "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "a.safetensors")])
    assert rc != 0
    assert "(--holdout-per-class) to at most 9" in one_line_error(capsys)


def test_sha_mismatch_says_what_the_user_can_do(ancestry_file, tmp_path, capsys):
    path = tmp_path / "anc.safetensors"
    path.write_bytes(ancestry_file.read_bytes())
    (tmp_path / "anc.json").write_text(ancestry_file.with_suffix(".json").read_text())
    model, _ = load_checkpoint(path)
    save_file({k: v.contiguous() + 1 for k, v in model.state_dict().items()}, str(path))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert "verify=False" not in msg and "Restore the original" in msg, msg
    assert main(["train", "--ancestry", str(path), "--layers", "0", "--epochs", "1", "--device", "cpu"]) != 0
    assert "Restore the original" in one_line_error(capsys)


def test_missing_card_hint_fits_the_commands(ancestry_file, tmp_path, capsys):
    path = tmp_path / "bare.safetensors"
    path.write_bytes(ancestry_file.read_bytes())
    with pytest.raises(CheckpointError) as info:
        read_card(path)
    msg = str(info.value)
    assert "(--arch) instead" not in msg and "bare.json" in msg, msg
    assert main(["train", "--ancestry", str(path), "--layers", "0", "--epochs", "1", "--device", "cpu"]) != 0
    msg = one_line_error(capsys)
    assert "python -m learngene accumulate" in msg and "models layers PATH --arch ARCH" in msg, msg
    # every option the hint names exists where it names it; `train` has no --arch of its own
    assert option_exists(["models", "layers"], "--arch") and option_exists(["accumulate"], "--out")
    assert not option_exists(["train"], "--arch")


# ------------------------------------------------------------------ 4. accumulate's default warmup


def test_accumulate_one_epoch_clamps_the_default_warmup(tmp_path, capsys):
    out = tmp_path / "a.safetensors"
    rc = main(["accumulate", "--arch", "lg_resnet_mini", "--images-per-class", "8",
               "--holdout-per-class", "2", "--epochs", "1", "--batch-size", "256", "--device", "cpu",
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert read_card(out).extra["train_config"]["warmup_epochs"] == 0


def test_accumulate_refuses_a_warmup_the_user_set_too_long(capsys):
    rc = main(["accumulate", "--epochs", "2", "--warmup-epochs", "2", "--device", "cpu"])
    assert rc == EXIT_USAGE
    msg = one_line_error(capsys)
    assert "--warmup-epochs must be smaller than --epochs (2), got 2" in msg, msg
