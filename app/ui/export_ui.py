"""Export runs from the Runs page: TensorBoard event files and an MLflow store, as downloads (zip) or
written into folders on this machine (`learngene.jobs.export`; CLI twin `python -m learngene jobs export`)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import streamlit as st

from app.logic import messages
from app.person import identity
from app.shared import config, server
from app.ui import widgets


def export_zip(run_dirs: list[Path], what: str) -> bytes:
    """The runs exported and zipped (`learngene.jobs.export.export_zip`): "tensorboard", "mlflow" (file store) or
    "mlflow-sqlite"; MLflow's own client reads the unzipped store."""
    from learngene.jobs.export import export_zip as _zip

    return _zip(run_dirs, what)


def export_ui(picked: list[Any]) -> None:
    """Downloads of the picked runs for TensorBoard and MLflow, the same written to folders, and the command."""
    dirs = [Path(i.path) for i in picked]
    ids = [i.run_id for i in picked]
    st.caption(f"{len(picked)} run(s): their configuration as hyper-parameters, every curve (loss, accuracy, lr… "
               "of each model and task, by epoch) as metrics, the summary's numbers, and their names, tags and notes.")
    c = st.columns(3)
    c[0].download_button("TensorBoard event files (.zip)", data=lambda: export_zip(dirs, "tensorboard"),
                         file_name="learngene-tensorboard.zip", mime="application/zip", key="export-tb",
                         on_click="ignore", icon=":material/download:",
                         help="unzip, then `tensorboard --logdir <folder>`")
    c[1].download_button("MLflow store (.zip)", data=lambda: export_zip(dirs, "mlflow"),
                         file_name="learngene-mlflow.zip", mime="application/zip", key="export-mlflow",
                         on_click="ignore", icon=":material/download:",
                         help="unzip, then `MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri <folder>`")
    c[2].download_button("MLflow SQLite store (.zip)", data=lambda: export_zip(dirs, "mlflow-sqlite"),
                         file_name="learngene-mlflow-sqlite.zip", mime="application/zip", key="export-mlflow-sqlite",
                         on_click="ignore", icon=":material/download:",
                         help="unzip, then `mlflow ui --backend-store-uri sqlite:///<folder>/mlflow.db`")
    root = my_export_root()
    c = st.columns(2)
    tb = c[0].text_input("TensorBoard folder", "tensorboard", key="export-tb-dir",
                         help=f"a folder inside your export folder {root}")
    ml = c[1].text_input("MLflow store folder" + (" or tracking URI" if identity.me().host else ""), "mlruns",
                         key="export-ml-dir", help=f"a folder inside {root}" + (
                             "; as the host you may also give an http(s):// tracking server" if identity.me().host
                             else "; a remote tracking server is for the host only"))
    try:
        tb_dir, ml_dest = export_targets(root, tb, ml, identity.me().host)
    except ValueError as exc:  # ConfigError: a folder outside the export root
        tb_dir = ml_dest = None
        st.caption(f":red[{messages.md(str(exc), 300)}]")
    else:
        argv = ["jobs", "export", *ids, "--tensorboard", str(tb_dir or ""), "--mlflow", str(ml_dest or "")]
        st.code("python -m learngene " + shlex.join(argv), language="bash")
    if st.button("Export into these folders", key="export-go", icon=":material/upload:"):
        from learngene.jobs.export import export_runs, mlflow_uri

        with widgets.error_box("export"), st.spinner("exporting…"):
            tb_dir, ml_dest = export_targets(root, tb, ml, identity.me().host)
            done = export_runs(dirs, tensorboard=tb_dir, mlflow=ml_dest)
            st.success(f"Exported {len(done['runs'])} run(s), {done['curves']} curves.", icon=":material/check:")
            st.code(f"tensorboard --logdir {shlex.quote(str(tb_dir))}\n"
                    f"MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri {shlex.quote(mlflow_uri(str(ml_dest)))}",
                    language="bash")


def my_export_root() -> Path:
    """This person's folder inside the server's export root (every export the app writes goes there)."""
    return config.export_root() / identity.pub()


def export_targets(root: Path, tb: str, ml: str, host: bool) -> tuple[Path | None, str | None]:
    """The TensorBoard folder and MLflow destination inside `root`; a remote tracking URI for the host only."""
    from learngene.errors import ConfigError

    tb_dir = server.inside(root, tb) if tb.strip() else None
    ml = ml.strip()
    if ml.lower().startswith(("http://", "https://", "databricks", "sqlite:", "file:", "postgresql", "mysql")):
        if ml.lower().startswith(("http://", "https://", "databricks")):
            if not host:
                raise ConfigError("exporting to a remote MLflow tracking server is for the host only; "
                                  "give a folder name instead")
            return tb_dir, ml
        raise ConfigError("give the MLflow store as a folder name inside your export folder")
    return tb_dir, (str(server.inside(root, ml)) if ml else None)
