"""Probes of counts, images, paths, uploads, checkpoints and messages (first pass)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from bench.reliability.runner import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    REFUSED_PICKLE,
    TINY,
    Ctx,
    Outcome,
    _judged,
    _rc_text,
    _short,
    one_line_error,
)

# ------------------------------------------------------------------ bounded counts; weak 4: epochs


def _missing(ctx: Ctx) -> str:
    return str(ctx.scratch("missing") / "missing.safetensors")


def probe_tasks_billion(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.quick_cli("train", "--ancestry", _missing(ctx), *TINY, "--tasks", "1000000000"),
                          EXIT_USAGE, "--tasks")


def probe_epochs_billion(ctx: Ctx) -> Outcome:
    # the last --epochs wins, as argparse reads options
    return one_line_error(ctx.quick_cli("train", "--ancestry", _missing(ctx), *TINY, "--epochs", "1000000000"),
                          EXIT_USAGE, "--epochs", "1000000000")


def probe_images_billion(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.quick_cli("data", "info", "--images-per-class", "1000000000"), EXIT_USAGE,
                          "--images-per-class", "1000000000")


def probe_image_size_huge(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.quick_cli("data", "info", "--image-size", "100000"), EXIT_USAGE, "--image-size", "100000")


# ------------------------------------------------------------------ decompression bomb


def _png_bomb(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def probe_png_bomb(ctx: Ctx) -> Outcome:
    from PIL import Image

    root = ctx.scratch("bomb")
    for c in range(3):
        (root / f"class{c}").mkdir(exist_ok=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (40 * c, 20 * i, 0)).save(root / f"class{c}" / f"{i}.png")
    (root / "class0" / "bomb.png").write_bytes(_png_bomb(20000, 20000))
    proc = ctx.cli("data", "info", "--dataset", f"folder:{root}")
    skipped = [line for line in proc.stdout.splitlines() if "skipped" in line]
    good = proc.returncode == 0 and "skipped: class0/bomb.png" in proc.stdout and "Traceback" not in proc.stderr
    return Outcome(good, f"{_rc_text(proc)}: {_short(skipped[0] if skipped else '(nothing skipped)')}")


# ------------------------------------------------------------------ label smoothing


def _label_smoothing(value: str) -> Callable[[Ctx], Outcome]:
    def probe(ctx: Ctx) -> Outcome:
        return one_line_error(ctx.quick_cli("train", "--ancestry", _missing(ctx), *TINY, "--label-smoothing", value),
                              EXIT_USAGE, "--label-smoothing")
    return probe


# ------------------------------------------------------------------ unusable paths


def probe_runs_dir_file(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.cli("jobs", "--runs-dir", "/etc/passwd", "list"), EXIT_USAGE,
                          "--runs-dir /etc/passwd is a file")


def probe_runs_dir_file_start(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.cli("jobs", "--runs-dir", "/etc/passwd", "start", "--", "selftest"), EXIT_USAGE,
                          "--runs-dir /etc/passwd is a file")


def probe_save_models_file(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.quick_cli("train", "--ancestry", _missing(ctx), *TINY, "--save-models", "/etc/passwd"),
                          EXIT_USAGE, "--save-models /etc/passwd is a file")


def probe_out_under_proc(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.quick_cli("inherit", "--ancestry", _missing(ctx), "--out", "/proc/nope/x.safetensors"),
                          EXIT_USAGE, "/proc/nope cannot be created")


# ------------------------------------------------------------------ uploads through the app's code


class _Upload:
    """What `st.file_uploader` hands over: a name and the bytes."""

    def __init__(self, name: str, data: bytes):
        self.name, self._data = name, data

    def getvalue(self) -> bytes:
        return self._data


def _good_weights() -> bytes:
    import torch
    from safetensors.torch import save

    from learngene.models import create_model

    torch.manual_seed(0)
    model = create_model("lg_resnet_mini", 8, img_size=32)
    return save({k: v.contiguous() for k, v in model.state_dict().items()})


def probe_upload_same_second(ctx: Ctx) -> Outcome:
    runs = ctx.scratch("upload-same") / "runs"
    good = _good_weights()
    with ctx.in_process(runs):
        from app.person import ancestries

        t0 = time.strftime("%Y%m%d-%H%M%S")
        first = ancestries.import_upload([_Upload("model.safetensors", good)], "lg_resnet_mini", 8, 32)
        try:
            ancestries.import_upload([_Upload("model.safetensors", b"not weights")], "lg_resnet_mini", 8, 32)
            refused = False
        except Exception:  # any refusal; the point is what it leaves behind
            refused = True
        second = ancestries.import_upload([_Upload("model.safetensors", good)], "lg_resnet_mini", 8, 32)
        same = time.strftime("%Y%m%d-%H%M%S") == t0
        kept = sorted(ancestries.uploaded_ancestries())
    outcome = _judged([(refused, "the bad upload refused"),
                       (first.is_file(), "the earlier good import kept"),
                       (first.parent != second.parent and kept == sorted([first, second]),
                        "each import in its own folder")])
    outcome.observed += " (all in one second)" if same else " (across a second boundary)"
    return outcome


def probe_upload_long_name(ctx: Ctx) -> Outcome:
    runs = ctx.scratch("upload-long") / "runs"
    name = "m" * 238 + ".safetensors"  # 250 characters
    with ctx.in_process(runs):
        from app.person import ancestries

        try:
            path = ancestries.import_upload([_Upload(name, _good_weights())], "lg_resnet_mini", 8, 32)
        except Exception as exc:
            return Outcome(False, f"refused: {type(exc).__name__}: {exc}")
    longest = max(len(p.name) for p in path.parents[:2]) if path else 0
    return Outcome(path.is_file() and path.suffix == ".safetensors" and len(path.name) <= 255,
                   f"stored as a {len(path.name)}-character {path.suffix} name (folder name {longest} characters)")


class _CallsCode:
    """Pickles as a call of os.getcwd: harmless, but code all the same."""

    def __reduce__(self):
        return (os.getcwd, ())


class _LocalClass:
    """Pickles as a reference to a class the loader does not know: torch's own message for it has ANSI codes."""


def _evil_pth(path: Path, payload: object) -> Path:
    import torch

    torch.save({"weight": torch.zeros(2), "payload": payload}, path)
    return path


def probe_pickle_upload(ctx: Ctx) -> Outcome:
    runs = ctx.scratch("upload-pickle") / "runs"
    data = _evil_pth(ctx.scratch("upload-pickle") / "evil.pth", _CallsCode()).read_bytes()
    with ctx.in_process(runs):
        from app.person import ancestries
        from app.shared import config
        from learngene.errors import LearngeneError

        try:
            ancestries.import_upload([_Upload("evil.pth", data)], "lg_resnet_mini", 8, 32)
            return Outcome(False, "ACCEPTED")
        except LearngeneError as exc:
            msg = str(exc)
        left = [p for p in config.uploads_dir().rglob("*") if p.is_file()] if config.uploads_dir().is_dir() else []
    worded = REFUSED_PICKLE in msg and "weights_only" not in msg and "\x1b" not in msg
    return Outcome(worded and not left, f"{_short(msg, 90)}; {len(left)} file(s) left",
                   weak=not worded and not left)


# ------------------------------------------------------------------ checkpoints the CLI refuses


def _pickle_probe(payload: Callable[[], object]) -> Callable[[Ctx], Outcome]:
    def probe(ctx: Ctx) -> Outcome:
        path = _evil_pth(ctx.scratch("pickle") / f"evil-{payload.__name__}.pth", payload())
        proc = ctx.quick_cli("models", "layers", str(path), "--arch", "lg_resnet_mini", "--num-classes", "8")
        return one_line_error(proc, (EXIT_USAGE, EXIT_FAILED), REFUSED_PICKLE,
                              absent=("weights_only", "\x1b", "corrupt"))
    return probe


def probe_folder_named_safetensors(ctx: Ctx) -> Outcome:
    folder = ctx.scratch("folder") / "x.safetensors"
    folder.mkdir(exist_ok=True)
    return one_line_error(ctx.quick_cli("models", "layers", str(folder)), (EXIT_USAGE, EXIT_FAILED), "is a directory",
                          absent=("does not exist",))


def _models_layers_error(make: Callable[[Path], None], name: str, *extra: str, needles: tuple[str, ...] = (),
                         absent: tuple[str, ...] = ()) -> Callable[[Ctx], Outcome]:
    def probe(ctx: Ctx) -> Outcome:
        path = ctx.scratch(name) / f"{name}.safetensors"
        make(path)
        return one_line_error(ctx.quick_cli("models", "layers", str(path), *extra), (EXIT_USAGE, EXIT_FAILED), path.name,
                              *needles, absent=absent)
    return probe


def _with_card(ctx: Ctx, path: Path) -> None:
    shutil.copy(ctx.checkpoint().with_suffix(".json"), path.with_suffix(".json"))


def probe_truncated(ctx: Ctx) -> Outcome:
    src = ctx.checkpoint()

    def make(path: Path) -> None:
        data = src.read_bytes()
        path.write_bytes(data[:len(data) // 2])
        _with_card(ctx, path)
    return _models_layers_error(make, "truncated")(ctx)


NO_CARD = ("--arch", "lg_vit_tiny", "--num-classes", "64", "--set", "depth=2")  # loaded strictly, without a card


def probe_empty(ctx: Ctx) -> Outcome:
    return _models_layers_error(lambda path: path.write_bytes(b""), "empty", *NO_CARD)(ctx)


def probe_huge_header(ctx: Ctx) -> Outcome:
    # a safetensors file starts with the 8-byte length of its JSON header: here 2**62 bytes
    make = (lambda path: path.write_bytes((1 << 62).to_bytes(8, "little") + b'{"a": 1}'))  # noqa: E731
    return _models_layers_error(make, "huge-header", *NO_CARD)(ctx)


def probe_wrong_arch(ctx: Ctx) -> Outcome:
    proc = ctx.quick_cli("models", "layers", str(ctx.checkpoint()), "--arch", "lg_resnet_mini", "--num-classes", "64")
    return one_line_error(proc, (EXIT_USAGE, EXIT_FAILED), "does not fit lg_resnet_mini")


# ------------------------------------------------------------------ messages name what the user can type


def probe_n_way_one(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.quick_cli("train", "--n-way", "1", "--epochs", "1", "--device", "cpu",
                                  "--images-per-class", "30"), EXIT_USAGE, "--n-way must be at least 2",
                          absent=("num_classes",))


def probe_condense_hint(ctx: Ctx) -> Outcome:
    proc = ctx.quick_cli("condense", "--ancestry", str(ctx.checkpoint()), "--images-per-class", "30", "--no-pd-cache",
                   "--device", "cpu", "--out", str(ctx.scratch("condense") / "sim.json"))
    return one_line_error(proc, (EXIT_USAGE, EXIT_FAILED), "--set holdout_per_class=N")


def probe_sha_mismatch_hint(ctx: Ctx) -> Outcome:
    def make(path: Path) -> None:
        from safetensors.torch import load_file, save_file

        save_file({k: v + 1 if v.is_floating_point() else v for k, v in load_file(ctx.checkpoint()).items()},
                  str(path))
        _with_card(ctx, path)
    return _models_layers_error(make, "changed", needles=("Restore the original",),
                                absent=("verify=False",))(ctx)


def probe_missing_card_hint(ctx: Ctx) -> Outcome:
    bare = ctx.scratch("bare") / "bare.safetensors"
    shutil.copy(ctx.checkpoint(), bare)
    proc = ctx.quick_cli("train", "--ancestry", str(bare), "--layers", "0", "--epochs", "1", "--device", "cpu")
    return one_line_error(proc, (EXIT_USAGE, EXIT_FAILED), "bare.json", "python -m learngene accumulate",
                          "models layers PATH --arch ARCH", absent=("(--arch) instead",))


def probe_accumulate_one_epoch(ctx: Ctx) -> Outcome:
    out = ctx.scratch("accumulate") / "a.safetensors"
    proc = ctx.cli("accumulate", "--arch", "lg_resnet_mini", "--images-per-class", "8", "--holdout-per-class", "2",
                   "--epochs", "1", "--batch-size", "256", "--device", "cpu", "--out", str(out))
    if proc.returncode != 0:
        return one_line_error(proc, EXIT_OK)  # judged bad; shows the error
    card = json.loads(out.with_suffix(".json").read_text())
    warmup = card.get("extra", {}).get("train_config", {}).get("warmup_epochs")
    return Outcome(warmup == 0 and "Traceback" not in proc.stderr,
                   f"{_rc_text(proc)}: checkpoint saved, warmup_epochs = {warmup}")


