"""Probes of the second hardening pass: hostile cards and sizes, non-finite weights, image modes, split files,
folders, one writer per run folder, full disks and read-only folders, export and cluster addresses, messages."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.reliability.runner import (
    EXIT_FAILED,
    EXIT_USAGE,
    TINY,
    Ctx,
    Outcome,
    _judged,
    _rc_text,
    one_line_error,
)

ERRORS = (EXIT_USAGE, EXIT_FAILED)


def _copy_ckpt(ctx: Ctx, name: str, card_change=None, weights_change=None) -> Path:
    from safetensors.torch import load_file, save_file

    from learngene.models import file_sha256

    path = ctx.scratch(name) / f"{name}.safetensors"
    if weights_change is None:
        shutil.copy(ctx.checkpoint(), path)
    else:
        state = load_file(ctx.checkpoint())
        weights_change(state)
        save_file(state, str(path))
    card = json.loads(ctx.checkpoint().with_suffix(".json").read_text())
    card["sha256"] = file_sha256(path)
    if card_change is not None:
        card_change(card)
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


# ------------------------------------------------------------------ sizes a card or option names


def _card_size(where: str, key: str, value: int) -> Callable[[Ctx], Outcome]:
    def probe(ctx: Ctx) -> Outcome:
        def change(card):
            (card["spec"] if where == "spec" else card["spec"]["overrides"])[key] = value
        path = _copy_ckpt(ctx, f"card-{key}", change)
        return one_line_error(ctx.quick_cli("models", "layers", str(path)), ERRORS, f"{key} must be a whole number")
    return probe


def probe_card_shape_lie(ctx: Ctx) -> Outcome:
    path = _copy_ckpt(ctx, "card-lie", lambda c: c["spec"].__setitem__("num_classes", 90000))
    return one_line_error(ctx.quick_cli("models", "layers", str(path)), ERRORS, "head.weight: checkpoint (64, 96) "
                          "vs model (90000, 96)", "The card does not describe these weights")


def probe_set_depth_zero(ctx: Ctx) -> Outcome:
    out = ctx.scratch("depth0") / "a.safetensors"
    proc = ctx.quick_cli("accumulate", "--set", "depth=0", "--images-per-class", "8", "--holdout-per-class", "2",
                         "--epochs", "1", "--device", "cpu", "--threads", "1", "--out", str(out))
    outcome = one_line_error(proc, EXIT_USAGE, "depth must be a whole number from 1 to 64")
    outcome.good = outcome.good and not out.exists()
    return outcome


def _option(*argv: str, needles: tuple[str, ...], code=EXIT_USAGE, absent: tuple[str, ...] = ()) -> Callable:
    def probe(ctx: Ctx) -> Outcome:
        args = [a.replace("$ANC", str(ctx.checkpoint())).replace("$TMP", str(ctx.scratch("opt"))) for a in argv]
        return one_line_error(ctx.quick_cli(*args), code, *needles, absent=absent)
    return probe


# ------------------------------------------------------------------ non-finite weights


def _poison(state):
    state["blocks.0.attn.qkv.weight"][0, 0] = float("nan")


def probe_nan_condense(ctx: Ctx) -> Outcome:
    path = _copy_ckpt(ctx, "nan-condense", weights_change=_poison)
    proc = ctx.quick_cli("condense", "--ancestry", str(path), "--images-per-class", "30", "--no-pd-cache",
                         "--device", "cpu", "--out", str(ctx.scratch("nan-condense") / "sim.json"))
    return one_line_error(proc, EXIT_FAILED, "NaN or infinite values", "blocks.0.attn.qkv.weight")


def probe_nan_inherit(ctx: Ctx) -> Outcome:
    path = _copy_ckpt(ctx, "nan-inherit", weights_change=_poison)
    out = ctx.scratch("nan-inherit") / "lg.safetensors"
    outcome = one_line_error(ctx.quick_cli("inherit", "--ancestry", str(path), "--layers", "0", "--out", str(out)),
                             EXIT_FAILED, "NaN or infinite values", "blocks.0.attn.qkv.weight")
    outcome.good = outcome.good and not out.exists()
    return outcome


def probe_nan_learngene(ctx: Ctx) -> Outcome:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    folder = ctx.scratch("nan-learngene")
    good = folder / "lg.safetensors"
    made = ctx.quick_cli("inherit", "--ancestry", str(ctx.checkpoint()), "--layers", "0", "--out", str(good))
    if made.returncode != 0:
        return one_line_error(made, 0)
    state = load_file(good)
    key = next(k for k in sorted(state) if k.startswith("layers/0/") and state[k].is_floating_point())
    state[key].view(-1)[0] = float("inf")
    with safe_open(str(good), framework="pt") as f:
        meta = f.metadata()
    save_file(state, str(folder / "bad.safetensors"), metadata=meta)
    proc = ctx.quick_cli("train", "--learngene", str(folder / "bad.safetensors"), *TINY)
    return one_line_error(proc, EXIT_FAILED, "NaN or infinite values", key)


def probe_card_sha_empty(ctx: Ctx) -> Outcome:
    path = _copy_ckpt(ctx, "sha-empty", lambda c: c.__setitem__("sha256", ""),
                      weights_change=lambda s: s["head.bias"].add_(1.0))
    return one_line_error(ctx.quick_cli("models", "layers", str(path)), ERRORS, "records no SHA-256")


# ------------------------------------------------------------------ images, folders, split files


def _classes(root: Path, n_classes: int = 3, n: int = 12) -> Path:
    from PIL import Image

    for c in range(n_classes):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (40 * c, 10 * i, 0)).save(root / f"c{c}" / f"{i}.png")
    return root


def probe_image_modes(ctx: Ctx) -> Outcome:
    import numpy as np
    from PIL import Image

    root = _classes(ctx.scratch("modes") / "data")
    c = root / "c0"
    Image.fromarray(np.full((16, 16), 32768, np.uint16)).save(c / "grey16.png")
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(c / "clear.png")
    Image.new("LA", (8, 8), (0, 255)).save(c / "la.png")
    Image.new("CMYK", (8, 8), (0, 0, 0, 0)).save(c / "cmyk.jpg")
    Image.new("1", (8, 8), 1).save(c / "bw.png")
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(c / "float.tif")
    Image.fromarray(np.full((8, 8), 9000.0, np.float32)).save(c / "float-big.tif")
    from learngene.data.stream import decode_or_reason

    got = {f: decode_or_reason(c / f, 8) for f in ("grey16.png", "clear.png", "la.png", "bw.png", "float.tif",
                                                  "cmyk.jpg", "float-big.tif")}
    means = {f: round(float(v.float().mean())) for f, v in got.items() if not isinstance(v, str)}
    refused = {f: v for f, v in got.items() if isinstance(v, str)}
    return _judged([(means == {"grey16.png": 128, "clear.png": 255, "la.png": 0, "bw.png": 255, "float.tif": 128,
                               "cmyk.jpg": 255}, f"decoded means {means}"),
                    (list(refused) == ["float-big.tif"] and "32-bit float" in refused["float-big.tif"],
                     f"refused by name: {refused}")])


def probe_split_dev_zero(ctx: Ctx) -> Outcome:
    t0 = time.perf_counter()
    out = one_line_error(ctx.quick_cli("data", "info", "--split-file", "/dev/zero"), ERRORS, "/dev/zero",
                         "not a regular file")
    out.good = out.good and time.perf_counter() - t0 < 10
    return out


def _split_probe(data: dict, code: int, *needles: str) -> Callable[[Ctx], Outcome]:
    def probe(ctx: Ctx) -> Outcome:
        root = _classes(ctx.scratch("split") / "data", 4, 4)
        split = ctx.scratch("split") / f"split-{abs(hash(json.dumps(data))) % 10**6}.json"
        split.write_text(json.dumps(data))
        proc = ctx.quick_cli("data", "info", "--dataset", f"folder:{root}", "--split-file", str(split))
        if code == 0:
            return Outcome(proc.returncode == 0 and "Traceback" not in proc.stderr,
                           f"{_rc_text(proc)}: {proc.stdout.splitlines()[2] if proc.returncode == 0 else proc.stderr}")
        return one_line_error(proc, code, *needles)
    return probe


def probe_folder_empty_classes(ctx: Ctx) -> Outcome:
    root = _classes(ctx.scratch("empty-classes") / "data", 7, 3)
    (root / "empty").mkdir()
    (root / "nested" / "inner").mkdir(parents=True)
    shutil.copy(root / "c0" / "0.png", root / "nested" / "inner" / "x.png")
    proc = ctx.quick_cli("data", "info", "--dataset", f"folder:{root}")
    return _judged([(proc.returncode == 0, _rc_text(proc)),
                    ("left out: empty/ (empty)" in proc.stdout, "the empty class folder reported"),
                    ("left out: nested/ (only sub-folders" in proc.stdout, "the sub-folder-only class reported")])


def probe_folder_control_names(ctx: Ctx) -> Outcome:
    root = _classes(ctx.scratch("control-names") / "data", 3, 3)
    hostile = root / "new\nline\x1b[31mred"
    shutil.copytree(root / "c0", hostile)
    proc = ctx.quick_cli("data", "info", "--dataset", f"folder:{root}")
    return _judged([(proc.returncode == 0, _rc_text(proc)),
                    ("new\\nline\\x1b[31mred" in proc.stdout and "\x1b" not in proc.stdout,
                     "the name printed escaped: new\\nline\\x1b[31mred")])


def probe_stream_truncated_jpeg(ctx: Ctx) -> Outcome:
    import numpy as np
    from PIL import Image

    root = _classes(ctx.scratch("truncated") / "data", 3, 4)
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "c0" / "whole.jpg")
    data = (root / "c0" / "whole.jpg").read_bytes()
    (root / "c0" / "cut.jpg").write_bytes(data[:-200])
    with ctx.in_process(ctx.runs):
        from learngene.data.sources import load_folder

        ds = load_folder(root, stream=True)
    skipped = ds.meta["skipped_files"]
    return Outcome(ds.skipped == 1 and "truncated JPEG" in skipped[0], f"streamed: skipped {ds.skipped}: {skipped}")


# ------------------------------------------------------------------ one writer, full disks, read-only folders


def probe_two_writers(ctx: Ctx) -> Outcome:
    run = ctx.scratch("two-writers") / "run"
    with ctx.in_process(ctx.runs):
        from learngene.reporting import Reporter

        with Reporter(run, total=1, quiet=True):
            proc = ctx.quick_cli("train", "--ancestry", str(ctx.checkpoint()), "--layers", "0", *TINY,
                                 "--run-dir", str(run))
    return one_line_error(proc, EXIT_USAGE, f"run folder {run} is being written by another command")


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        raise RuntimeError(f"a small file system is needed (mount tmpfs, as root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def probe_disk_full_accumulate(ctx: Ctx) -> Outcome:
    with _tmpfs(ctx.scratch("full-acc") / "mnt", "1m") as mnt:
        out = mnt / "a.safetensors"
        proc = ctx.cli("accumulate", "--images-per-class", "8", "--holdout-per-class", "2", "--epochs", "1",
                       "--device", "cpu", "--threads", "1", "--batch-size", "256", "--out", str(out))
        left = sorted(p.name for p in mnt.iterdir())
    outcome = one_line_error(proc, EXIT_FAILED, f"disk full at {mnt}/a.")
    return _judged([(outcome.good, outcome.observed), (not left, f"files left: {left or 'none'}")])


def probe_disk_full_job(ctx: Ctx) -> Outcome:
    with _tmpfs(ctx.scratch("full-job") / "mnt", "160k") as mnt:
        runs = mnt / "runs"
        start = ctx.cli("jobs", "start", "--", "inherit", "--ancestry", str(ctx.checkpoint()), "--layers", "0,1",
                        runs=runs)
        if start.returncode != 0:
            return one_line_error(start, 0)
        info = ctx.manager(runs).wait(start.stdout.strip(), timeout=120)
    return Outcome(info.state == "failed" and "disk full at" in (info.reason or ""),
                   f"state {info.state}: {info.reason}")


def probe_read_only_runs(ctx: Ctx) -> Outcome:
    with _tmpfs(ctx.scratch("read-only") / "mnt", "4m") as mnt:
        runs = mnt / "runs"
        mgr = ctx.manager(runs)
        from learngene.jobs import JobSpec

        run_id = mgr.start(JobSpec(argv=["selftest", "--records", "1", "--interval", "0"]))
        mgr.wait(run_id, timeout=60)
        from learngene.jobs.warm import stop_server

        stop_server(runs)  # the runs folder's fork server keeps its socket open there: the mount would be busy
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True, capture_output=True)
        annotate = ctx.cli("jobs", "annotate", run_id, "--name", "x", runs=runs)
        delete = ctx.cli("jobs", "delete", run_id, runs=runs)
    a = one_line_error(annotate, EXIT_FAILED, "read-only file system")
    d = one_line_error(delete, EXIT_FAILED, "read-only file system")
    return _judged([(a.good, f"annotate {a.observed}"), (d.good, f"delete {d.observed}")])


# ------------------------------------------------------------------ export and cluster addresses


def probe_mlflow_unreachable(ctx: Ctx) -> Outcome:
    run_id = ctx.finished_run("export")
    t0 = time.perf_counter()
    proc = ctx.cli("jobs", "export", run_id, "--mlflow", "http://127.0.0.1:1", timeout=120)
    secs = time.perf_counter() - t0
    outcome = one_line_error(proc, ERRORS, "127.0.0.1:1")
    outcome.good = outcome.good and secs < 15
    outcome.observed += f" ({secs:.1f} s)"
    return outcome


# ------------------------------------------------------------------ messages


def probe_n_way_three_classes(ctx: Ctx) -> Outcome:
    root = _classes(ctx.scratch("three") / "data", 3, 12)
    proc = ctx.quick_cli("train", "--dataset", f"folder:{root}", "--ancestry", str(ctx.checkpoint()), "--layers", "0",
                         *TINY)
    return one_line_error(proc, EXIT_FAILED, "at least 2", absent=("at most 1",))


def probe_img_size_agrees_with_help(ctx: Ctx) -> Outcome:
    proc = ctx.quick_cli("data", "info", "--img-size", "7")
    helped = ctx.quick_cli("data", "info", "--help")
    outcome = one_line_error(proc, EXIT_USAGE, "--img-size must be from 8 to 256 for the shapes data set")
    agrees = "shapes: 8 to 256" in " ".join(helped.stdout.split())
    return _judged([(outcome.good, outcome.observed), (agrees, "--help names the same bounds")])


def probe_holdout_one_image(ctx: Ctx) -> Outcome:
    root = _classes(ctx.scratch("one-image") / "data", 3, 1)
    proc = ctx.quick_cli("accumulate", "--dataset", f"folder:{root}", "--holdout-per-class", "2", "--epochs", "1",
                         "--device", "cpu", "--threads", "1", "--out", str(ctx.scratch("one-image") / "a.safetensors"))
    return one_line_error(proc, ERRORS, "at least 2 images", absent=("below 1",))
