"""Export runs from the Runs page: TensorBoard event files and an MLflow store, as downloads (zip) or
written into folders on this machine (`learngene.export`; CLI twin `python -m learngene jobs export`)."""

from __future__ import annotations

import io
import shlex
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import streamlit as st

from app import config, widgets


def zipped(folder: Path) -> bytes:
    """Every file under `folder` in a zip (paths relative to it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(folder).as_posix())
    return buf.getvalue()


def export_zip(run_dirs: list[Path], what: str) -> bytes:
    """The runs exported into a fresh folder, zipped: `what` is "tensorboard" or "mlflow"."""
    from learngene.export import export_runs

    with tempfile.TemporaryDirectory(prefix="lg-export-") as tmp:
        out = Path(tmp) / what
        export_runs(run_dirs, **{what: out})
        return zipped(out)


def export_ui(picked: list[Any]) -> None:
    """Downloads of the picked runs for TensorBoard and MLflow, the same written to folders, and the command."""
    dirs = [Path(i.path) for i in picked]
    ids = [i.run_id for i in picked]
    st.caption(f"{len(picked)} run(s): their configuration as hyper-parameters, every curve (loss, accuracy, lr… "
               "of each model and task, by epoch) as metrics, the summary's numbers, and their names, tags and notes.")
    c = st.columns(2)
    c[0].download_button("TensorBoard event files (.zip)", data=lambda: export_zip(dirs, "tensorboard"),
                         file_name="learngene-tensorboard.zip", mime="application/zip", key="export-tb",
                         on_click="ignore", icon=":material/download:",
                         help="unzip, then `tensorboard --logdir <folder>`")
    c[1].download_button("MLflow store (.zip)", data=lambda: export_zip(dirs, "mlflow"),
                         file_name="learngene-mlflow.zip", mime="application/zip", key="export-mlflow",
                         on_click="ignore", icon=":material/download:",
                         help="unzip, then `MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri <folder>`")
    root = config.runs_dir().resolve().parent / "exports"
    c = st.columns(2)
    tb = c[0].text_input("TensorBoard folder on this machine", str(root / "tensorboard"), key="export-tb-dir")
    ml = c[1].text_input("MLflow store (folder or tracking URI)", str(root / "mlruns"), key="export-ml-dir")
    argv = ["jobs", "export", *ids, "--tensorboard", tb, "--mlflow", ml]
    st.code("python -m learngene " + shlex.join(argv), language="bash")
    if st.button("Export into these folders", key="export-go", icon=":material/upload:"):
        from learngene.export import export_runs, mlflow_uri

        with widgets.error_box("export"), st.spinner("exporting…"):
            done = export_runs(dirs, tensorboard=tb or None, mlflow=ml or None)
            st.success(f"Exported {len(done['runs'])} run(s), {done['curves']} curves.", icon=":material/check:")
            st.code(f"tensorboard --logdir {shlex.quote(tb)}\n"
                    f"MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri {shlex.quote(mlflow_uri(ml))}",
                    language="bash")
