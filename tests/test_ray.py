"""The Ray backend against a real local Ray head: no mocks.

One Ray head per module, started here on 127.0.0.1 with 2 CPUs and no dashboard. Library and CLI calls
made in this process use it (the backend finds Ray connected and leaves it running); commands run as
jobs join it with `--ray-address`. Checked: a tiny study and a tiny sweep give the same journal
entries and pairs with both backends; a Ray study cancelled through the job system leaves no Ray task
running; a 2-worker DDP `accumulate` writes a loadable checkpoint with its card; without Ray installed,
`import learngene` and the local path work and `--backend ray` says how to install it.

Ray is in requirements-dev.txt, so `make venv` and CI install it: when it is missing these tests
skip on a developer machine but fail under CI (env CI set).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from learngene.cli import main
from learngene.cluster.backend import LOOPBACK_ENV
from learngene.runlog import read_jsonl
from tests._procs import kill_runs_under, wait_until

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault(LOOPBACK_ENV, "0")  # before ray is imported: the head listens on 127.0.0.1 only

STUDY = ["advantages", "--quick", "--models", "heur,finetune", "--tasks", "1", "--epochs", "2", "--shots", "1,2",
         "--lrs", "1e-3,3e-3", "--wds", "0.05", "--test-per-class", "4", "--device", "cpu"]
SWEEP = ["sweep", "--layers", "0", "--lrs", "1e-3,3e-3", "--shots", "2,5", "--images-per-class", "30", "--n-way", "3",
         "--test-per-class", "5", "--epochs", "2", "--batch-size", "5", "--device", "cpu"]


@pytest.fixture(scope="module")
def ray_head():
    """A real local Ray head: 2 CPUs, 127.0.0.1, no dashboard; its address ("127.0.0.1:PORT")."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("ray is not installed, and CI is set: the Ray tests must run (requirements-dev.txt pins "
                        "ray[train]; pip install -e .[cluster])", pytrace=False)
        pytest.skip("ray is not installed (pip install -e .[cluster]); under CI this fails instead")
    with pytest.MonkeyPatch.context() as mp:
        # a new local Ray whatever the environment says: RAY_ADDRESS would otherwise send ray.init (here and in
        # the commands these tests start) to an outside cluster
        mp.delenv("RAY_ADDRESS", raising=False)
        ctx = ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
        try:
            address = ctx.address_info["address"]
            assert address.startswith("127.0.0.1:"), address
            yield address
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def ancestry4(tmp_path_factory) -> Path:
    """A random-init 4-block lg_vit_tiny with a card (heur takes the last 3 blocks)."""
    import torch

    from learngene.models import ModelCard, create_model, save_checkpoint

    torch.manual_seed(0)
    vit = create_model("lg_vit_tiny", 8, depth=4)
    return save_checkpoint(vit, tmp_path_factory.mktemp("anc") / "anc4.safetensors", ModelCard(spec=vit.lg_spec))


def free_cpus() -> float:
    import ray

    return ray.available_resources().get("CPU", 0.0)


def journal(run_dir: Path) -> dict[tuple, dict]:
    (path,) = (run_dir / "outputs" / "journal").glob("*.jsonl")
    records, _ = read_jsonl(path)
    return {(tuple(r["identity"]), r["fingerprint"]): r for r in records}


def assert_same_histories(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert ra["epoch"] == rb["epoch"] and ra["step"] == rb["step"]
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr"):
            assert (key in ra) == (key in rb), key
            if key in ra:
                assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-6), (key, ra, rb)


def test_without_ray_learngene_imports_and_backend_ray_says_how_to_install(tmp_path):
    """A Python where `import ray` fails (sys.modules["ray"] = None) runs the library; --backend ray refuses."""
    code = ("import sys; sys.modules['ray'] = None\n"
            "import learngene, learngene.cli.sweep, learngene.cli.advantages, learngene.cli.accumulate\n"
            "import learngene.descend.sweep, learngene.descend.advantages, learngene.train.accumulate\n"
            "import learngene.cluster, learngene.cluster.options\n"
            "from learngene.cli import main\n"
            "sys.exit(main(['advantages', '--backend', 'ray', '--ancestry', 'x.safetensors']))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert "pip install -e .[cluster]" in line and "Traceback" not in proc.stderr


def test_ray_options_without_backend_ray_are_refused(capsys):
    assert main([*STUDY, "--ancestry", "x.safetensors", "--ray-address", "127.0.0.1:1"]) == 2
    assert "--ray-address" in capsys.readouterr().err
    assert main(["accumulate", "--workers", "2", "--epochs", "1"]) == 2
    assert "only apply with --backend ray" in capsys.readouterr().err


def test_a_study_gives_the_same_journal_on_both_backends(ray_head, ancestry4, tmp_path, one_torch_thread, capsys):
    argv = [*STUDY, "--ancestry", str(ancestry4)]
    assert main([*argv, "--run-dir", str(tmp_path / "local")]) == 0
    assert main([*argv, "--run-dir", str(tmp_path / "ray"), "--backend", "ray"]) == 0
    out = capsys.readouterr().out
    assert "Ray: 2 CPUs" in out and "9 Ray task(s) for 9 runs" in out
    local, on_ray = journal(tmp_path / "local"), journal(tmp_path / "ray")
    assert len(local) == 9 and set(on_ray) == set(local)  # the same run identities and fingerprints
    for key, rec in local.items():
        assert on_ray[key]["timing"] == "sequential (ray)" and rec["timing"] == "sequential"
        assert_same_histories(on_ray[key]["history"], rec["history"])
    # the driver wrote the job's records as locally: one study_run per run, progress complete
    records, _ = read_jsonl(tmp_path / "ray" / "metrics.jsonl")
    assert len([r for r in records if r["kind"] == "study_run"]) == 9
    assert records[0]["backend"] == "ray"
    progress = json.loads((tmp_path / "ray" / "progress.json").read_text())
    assert progress["done"] == progress["total"] == 9
    # and a study stopped on one backend resumes on the other: everything comes back from the journal
    assert main([*argv, "--run-dir", str(tmp_path / "ray"), "--backend", "local"]) == 0
    assert "9/9 runs restored from the journal" in capsys.readouterr().out


def test_a_sweep_gives_the_same_pairs_on_both_backends(ray_head, ancestry_file, tmp_path, one_torch_thread, capsys):
    argv = [*SWEEP, "--ancestry", str(ancestry_file)]
    assert main([*argv, "--run-dir", str(tmp_path / "local")]) == 0
    assert main([*argv, "--run-dir", str(tmp_path / "ray"), "--backend", "ray"]) == 0
    assert "Ray: 2 CPUs" in capsys.readouterr().out
    pairs = {}
    for name in ("local", "ray"):
        summary = json.loads((tmp_path / name / "outputs" / "summary.json").read_text())
        pairs[name] = {(p["task"], p["k_shot"], p["settings"]["lr"]): p for p in summary["pairs"]}
    assert len(pairs["local"]) == 4 and set(pairs["ray"]) == set(pairs["local"])
    for key, p in pairs["local"].items():
        q = pairs["ray"][key]
        for role in ("learngene", "baseline"):
            assert_same_histories(q[role]["history"], p[role]["history"])
    for name in ("local", "ray"):  # the same records reach the run folder: 2 models x 2 epochs x 4 pairs
        records, _ = read_jsonl(tmp_path / name / "metrics.jsonl")
        assert records[0]["kind"] == "config" and records[0]["backend"] == name
        assert len([r for r in records if r["kind"] == "epoch"]) == 16
        assert len([r for r in records if r["kind"] == "pair"]) == 4


def ray_task_processes(name: str) -> list[int]:
    """Pids of processes whose title is Ray's for a running task called `name` ("ray::NAME")."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(f"ray::{name}".encode()):
            found.append(int(pid))
    return found


def test_a_cancelled_ray_study_leaves_no_ray_task_running(ray_head, ancestry4, tmp_path):
    """The real job system: `advantages --backend ray` joins the head as a job; JobManager.cancel sends it SIGTERM."""
    from learngene.jobs import JobManager, JobSpec

    runs = tmp_path / "runs"
    mgr = JobManager(runs, max_cpu_jobs=1)
    argv = [*STUDY, "--epochs", "400", "--ancestry", str(ancestry4), "--out", str(tmp_path / "study"),
            "--backend", "ray", "--ray-address", ray_head]
    run_id = mgr.start(JobSpec(argv=argv, kind="advantages"))
    try:
        wait_until(lambda: free_cpus() == 0 and len(ray_task_processes("study_unit")) == 2, timeout=120,
                   what="two Ray tasks of the study running on the head")
        info = mgr.cancel(run_id)
        info = mgr.wait(run_id, timeout=60)
        assert info.state == "cancelled", (info.state, info.reason, info.log_tail)
        wait_until(lambda: free_cpus() == 2 and not ray_task_processes("study_unit"), timeout=30,
                   what="the head's CPUs free and no study task process left")
        log = mgr.log_tail(run_id, 200)
        assert "cancelling" in log and "Ray task(s)" in log, log
        journal_files = list((tmp_path / "study" / "journal").glob("*.jsonl"))
        done = sum(len(read_jsonl(p)[0]) for p in journal_files)
        assert done < 9  # it was stopped, not finished
    finally:
        kill_runs_under(runs.resolve())


# Data-parallel training, checked against one process: 64 classes x 8 images = 512 training images in one global
# batch of 512 (one step per epoch, two epochs), no augmentation, plain SGD, a ViT (LayerNorm only: no batch
# statistics that would differ per worker). With 2 workers each takes its 256 images; DDP averages their
# gradients, which equals the gradient of the whole batch, so each step must give the 1-process weights up to
# float rounding.
DP_STEPS = ["accumulate", "--arch", "lg_vit_tiny", "--set", "depth=2", "--set", "embed_dim=48", "--images-per-class",
            "12", "--holdout-per-class", "4", "--epochs", "2", "--batch-size", "512", "--warmup-epochs", "0",
            "--no-augment", "--optimizer", "sgd", "--lr", "0.05", "--device", "cpu"]


@pytest.fixture(scope="module")
def two_worker_accumulate(ray_head, tmp_path_factory) -> tuple[Path, Path, str]:
    """(checkpoint, run folder, printed output) of `accumulate --backend ray --workers 2` with `DP_STEPS`."""
    import contextlib
    import io

    folder = tmp_path_factory.mktemp("ddp")
    out, printed = folder / "anc.safetensors", io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*DP_STEPS, "--out", str(out), "--run-dir", str(folder / "run"), "--backend", "ray",
                     "--workers", "2"]) == 0
    wait_until(lambda: free_cpus() == 2, timeout=30, what="the training processes gone")
    return out, folder / "run", printed.getvalue()


def test_two_worker_accumulate_writes_a_loadable_checkpoint(two_worker_accumulate):
    from learngene.models import load_checkpoint

    out, run, printed = two_worker_accumulate
    assert "2 DDP workers (gloo), 256 training images and a batch of 256 each (512 per step)" in printed
    model, card = load_checkpoint(out)  # the weights' SHA-256 is checked against the card
    assert card.extra["backend"] == "ray" and card.extra["workers"] == 2 and card.extra["per_worker_batch"] == 256
    assert card.extra["train_images"] == 2 * card.extra["per_worker_images"] == 64 * 8
    assert card.split and card.epochs == 2 and 0 <= card.base_accuracy <= 1
    import torch

    logits = model(torch.zeros(2, 3, 32, 32))
    assert logits.shape == (2, 64) and torch.isfinite(logits).all()
    records, _ = read_jsonl(run / "metrics.jsonl")
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2] and all("test_acc" in r for r in epochs)
    assert [r["step"] for r in epochs] == [1, 2]  # one step per epoch: the whole batch at once


def test_two_data_parallel_workers_take_the_steps_of_one_process(two_worker_accumulate, tmp_path, one_torch_thread):
    """The same two steps in one process (`accumulate` on the local backend, the 1-worker case) give the same
    weights; and the steps moved them far more than the tolerance."""
    import torch

    from learngene.models import create_model, load_checkpoint

    assert main([*DP_STEPS, "--out", str(tmp_path / "one.safetensors")]) == 0
    one = load_checkpoint(tmp_path / "one.safetensors")[0].state_dict()
    two = load_checkpoint(two_worker_accumulate[0])[0].state_dict()
    torch.manual_seed(0)  # the initial weights, as `accumulate` draws them (seed 0)
    start = create_model("lg_vit_tiny", num_classes=64, depth=2, embed_dim=48).state_dict()
    assert one.keys() == two.keys() == start.keys()
    assert max((one[k] - start[k]).abs().max().item() for k in start) > 1e-3  # the steps moved the weights
    for key in start:  # and two workers took the very same steps, up to the order of float sums
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-6, msg=lambda m, key=key: f"{key}: {m}")


def test_ray_speed_bench_smallest(ray_head, tmp_path, one_torch_thread, capsys):
    """`bench.ray_speed --quick` (here on the module's head): its table, CSV and docs section; the runs agree."""
    import csv

    from bench import ray_speed

    docs = tmp_path / "results.md"
    assert ray_speed.main(["--quick", "--device", "cpu", "--out", str(tmp_path / "out"), "--write-docs", "--docs",
                           str(docs)]) == 0
    with open(tmp_path / "out" / "ray-cpu.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["backend"], r["kind"]) for r in rows] == [("local", ""), ("ray", "cold"), ("ray", "warm")]
    assert all(r["agree"] == "True" for r in rows[1:])
    local_s = float(rows[0]["seconds"])
    assert local_s > 0 and float(rows[0]["speedup"]) == 1.0
    for r in rows[1:]:  # each speed-up is the local wall time over the row's own, as printed in the table
        assert float(r["speedup"]) == pytest.approx(local_s / float(r["seconds"]), rel=1e-9)
        assert f"| {local_s / float(r['seconds']):.2f}x |" in docs.read_text()
    text = docs.read_text()
    assert "<!-- bench:ray-cpu -->" in text and "How a study's wall time scales with workers" in text
    assert "python -m bench.ray_speed --quick" in text


def test_cluster_info_reads_the_heads_cpus_and_refuses_an_address_nothing_answers_at(ray_head) -> None:
    """`learngene cluster`: what the app shows before a Ray run (the cluster's CPUs/GPUs)."""
    import json
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "learngene", "cluster", *args, "--json"], capture_output=True,
                              text=True, timeout=120)

    local = cli()
    assert local.returncode == 0 and json.loads(local.stdout)["cpus"] >= 1
    joined = cli("--ray-address", ray_head)
    assert joined.returncode == 0, joined.stderr
    info = json.loads(joined.stdout.strip().splitlines()[-1])
    assert info["cpus"] == 2 and info["nodes"] == 1 and ray_head in info["where"]
    dead = cli("--ray-address", "127.0.0.1:1")
    assert dead.returncode != 0 and "nothing answers at 127.0.0.1:1" in dead.stderr
