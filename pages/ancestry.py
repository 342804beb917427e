"""Ancestry: choose, import or train the ancestry model; see its integral layers and its card."""

import streamlit as st

from app.logic import inputs
from app.logic.results import output_path
from app.person import ancestries, pipeline, resources, state
from app.shared import config
from app.ui import badges, forms, live, widgets

st.title("Ancestry")
widgets.explain_ui("What is the ancestry?", """
The **ancestry** is a network trained on a large set of *base* classes (the *accumulating* phase). Its
**integral layers** are the units that can be copied whole into a descendant: a transformer block of a ViT,
a residual block of a ResNet, a conv + BN + ReLU unit of a VGG. The learngene will be a few of them.

The studio opens on the embedded default, a small ViT trained on the 64 base classes of the procedurally
generated *shapes* data set (no download). You can also use any timm ViT/ResNet/VGG by name, upload a
checkpoint, or train a new ancestry in the background.
""")


st.subheader("Current ancestry")
anc = widgets.ancestry_ui()
if anc is not None:
    badges.ancestry_badge_ui(anc)
    widgets.card_ui(anc)
    widgets.layers_table_ui(anc, state.get().layers)

st.subheader("Choose another")
shipped, timm_tab, upload_tab, train_tab = st.tabs(["Shipped & imported", "timm by name", "Upload", "Train new"])

with shipped:
    with widgets.error_box("listing checkpoints"):
        options = {f"{p.name} (shipped)": p for p in config.shipped_ancestries() if p.is_file()}
        options |= {label: p for label, p in ancestries.trained_ancestries()}
        options |= {f"{p.name} (imported {p.parent.name[:15]})": p for p in ancestries.uploaded_ancestries()}
        if not options:
            st.info("No checkpoints yet: the embedded default is created with")
            st.code(config.CREATE_DEFAULT_HINT, language="bash")
        else:
            choice = st.selectbox("checkpoint", list(options), key="anc-pick")
            if st.button("Use this ancestry", key="anc-use", type="primary"):
                state.flash(ancestries.use(options[choice]))
                st.rerun()

with timm_tab:
    st.caption("A timm ViT, ResNet or VGG by name. Pretrained weights are downloaded from the Hugging Face Hub, "
               "so this needs network access; offline it fails with a message.")
    arch = st.text_input("timm model name", "resnet18", key="timm-arch")
    pretrained = st.toggle("pretrained weights (online)", value=True, key="timm-pre")
    if st.button("Import", key="timm-go"):
        with widgets.error_box(f"could not import {arch}"), st.spinner(f"building {arch}…"):
            state.flash(ancestries.use(ancestries.import_timm(arch, pretrained)))
            st.rerun()

with upload_tab:
    st.caption("A `.safetensors` checkpoint with its model card (`.json`, written by `accumulate`), or "
               "weights (`.safetensors`/`.pth`/`.pt`) of a named architecture.")
    files = st.file_uploader("checkpoint files", type=list(ancestries.UPLOAD_TYPES), accept_multiple_files=True,
                             key="anc-upload")
    c = st.columns(3)
    up_arch = c[0].text_input("architecture (weights without a card)", "", key="up-arch")
    up_classes = c[1].number_input("classes of its head", 2, 100_000, 64, key="up-classes")
    up_size = c[2].number_input("input size", 8, 1024, 32, key="up-size")
    if st.button("Use uploaded checkpoint", key="anc-upload-go", disabled=not files):
        with widgets.error_box("the uploaded checkpoint cannot be used"):
            state.flash(ancestries.use(ancestries.import_upload(files, up_arch, up_classes, up_size)))
            st.rerun()

with train_tab:
    from learngene.models import PRESETS

    c = st.columns(3)
    preset = c[0].selectbox("architecture", list(PRESETS), help="\n".join(f"- **{k}**: {v}" for k, v in PRESETS.items()),
                            **widgets.kept("acc-arch", next(iter(PRESETS)), lambda v: v in PRESETS))
    dataset = c[1].text_input("data set", help="'shapes' (embedded), 'cifar100' (needs its files), or 'folder:PATH'",
                              **widgets.kept("acc-data", "shapes", lambda v: isinstance(v, str)))
    values, problems = {}, []
    for col, (name, f, default, help_text) in zip(
            [c[2], *st.columns(3)],
            [("images_per_class", inputs.Field("images per class", 20, 5000, integer=True, step=10), 300,
              "a fifth of them (at most 100) are held out to measure accuracy"),
             ("epochs", inputs.Field("epochs", 1, 500, integer=True), 10, None),
             ("batch_size", inputs.Field("batch size", 8, 4096, integer=True), 128, None),
             ("lr", inputs.Field("learning rate", 0, 1, above=True, step=1e-4), 2e-3, None)], strict=True):
        values[name], problem = forms.number_ui(f, default, f"acc-{name}", help=help_text, where=col)
        problems += [problem] if problem else []
    flip = st.segmented_control(
        "horizontal flips", ["auto", "on", "off"],
        help="augmentation by mirroring: off where a mirror image is another class (letters b/d, digits). auto: on "
             "for shapes and cifar100, off for folders. The choice is recorded in the model card and used for "
             "everything trained from this ancestry", **widgets.kept("acc-flip", "auto", lambda v: v in ("auto", "on", "off"))
    ) or "auto"
    if dataset.strip().startswith("folder:") and flip == "auto":
        st.caption("Folder data: no horizontal flips by default (a mirrored letter or digit can be another class); "
                   "choose *on* if mirror images keep their class.")
    device = widgets.device_ui("acc-device")
    argv = None
    if not problems:
        per_class, epochs = values["images_per_class"], values["epochs"]
        argv = pipeline.accumulate_argv(preset, dataset, images_per_class=per_class, epochs=epochs,
                                        flip=None if flip == "auto" else flip,
                                        batch_size=values["batch_size"], lr=values["lr"], device=device,
                                        holdout_per_class=min(100, per_class // 5), warmup_epochs=min(2, epochs - 1))
    started = widgets.start_job_ui("Train ancestry in the background", argv or ["accumulate"], kind="accumulate",
                                   key="acc-go", device=device, name=f"ancestry {preset} on {dataset}",
                                   disabled=argv is None, help="; ".join(problems) or None)
    if started:
        state.remember("acc-run", started)
    with widgets.error_box("listing training runs"):
        runs = resources.jobs().list(kind="accumulate")[:5]
        if runs:
            watch = state.recalled("acc-run")
            watch = watch if watch in {i.run_id for i in resources.jobs().list(kind="accumulate")} else runs[0].run_id
            live.watch_ui([watch], key="acc", summary=False)
            info = resources.jobs().get(watch)
            ckpt = output_path(info, "ancestry.safetensors")
            if info.state == "done" and ckpt.is_file() and st.button("Use the trained ancestry", key="acc-use"):
                state.flash(ancestries.use(ckpt))
                st.rerun()
