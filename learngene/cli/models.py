"""`python -m learngene models ...`: list architectures and checkpoints, show integral layers.

torch/timm are imported inside the actions: every command module is imported to build the parser,
so top-level imports here would slow down every `python -m learngene ...` call.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from learngene.cli._common import parse_overrides
from learngene.errors import ConfigError, check_file

if TYPE_CHECKING:
    import torch

NAME = "models"
HELP = "List ancestry presets and shipped checkpoints, or show a model's integral layers."

_DEFAULT_CLASSES = 64  # the ancestry's base classes in the CIFAR-100 / ImageNet-100 splits


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`models list` and `models layers TARGET`."""
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True
    p_list = sub.add_parser("list", help="presets (with parameter counts) and shipped checkpoints")
    p_list.add_argument("--num-classes", type=int, default=_DEFAULT_CLASSES, help="head size for counts")
    p_layers = sub.add_parser("layers", help="table of integral layers: index, name, params, output shape")
    p_layers.add_argument(
        "target", help="a preset, a timm vit_/deit_/resnet/vgg name, a checkpoint (.safetensors with a "
        "card) or the name of a shipped checkpoint",
    )
    p_layers.add_argument(
        "--arch", default=None, help="architecture of a weights file that has no model card (loaded strictly)"
    )
    p_layers.add_argument("--num-classes", type=int, default=_DEFAULT_CLASSES)
    p_layers.add_argument("--img-size", type=int, default=32, help="input resolution (default 32)")
    p_layers.add_argument("--granularity", choices=("auto", "block", "stage"), default="auto")
    p_layers.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="architecture override, e.g. --set depth=4 --set patch_size=4 (values parsed as JSON)",
    )


def _resolve_checkpoint(target: str) -> Path | None:
    from learngene.models import PRESETS, shipped_checkpoints

    path = Path(target)
    if path.suffix in (".safetensors", ".json", ".pth", ".pt"):
        return check_file(path, "checkpoint")
    if target in PRESETS:  # a preset name is the architecture, even where a shipped checkpoint shares it
        return None
    for shipped in shipped_checkpoints():
        if shipped.stem == target:
            return shipped
    return None


def _load_target(args: argparse.Namespace) -> tuple[torch.nn.Module, str]:
    from learngene.models import create_model, load_checkpoint, load_weights

    ckpt = _resolve_checkpoint(args.target)
    arch = args.arch if ckpt is not None and args.arch else args.target
    if ckpt is not None and not args.arch:
        if args.overrides:
            raise ConfigError("--set applies to architectures, not checkpoints (their card fixes the spec)")
        model, card = load_checkpoint(ckpt)
        return model, f"{ckpt} ({card.spec.arch}, trained on {card.dataset or 'unknown data'})"
    model = create_model(arch, args.num_classes, img_size=args.img_size, **parse_overrides(args.overrides))
    if ckpt is not None:
        load_weights(model, ckpt, strict=True)
        return model, f"{ckpt} (as {arch})"
    return model, arch


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def _run_list(args: argparse.Namespace) -> int:
    from learngene.models import PRESETS, create_model, read_card, shipped_checkpoints

    print(f"Presets (parameters with a {args.num_classes}-class head):")
    width = max(len(n) for n in PRESETS)
    for name, desc in PRESETS.items():
        n = sum(p.numel() for p in create_model(name, args.num_classes).parameters())
        print(f"  {name:<{width}}  {_fmt_params(n):>7}  {desc}")
    print("  (img/s: training at batch 64, 32x32, on a 2-core CPU; also: any timm vit_*, deit_*, resnet* or vgg* name)")
    shipped = shipped_checkpoints()
    print(f"\nShipped checkpoints ({len(shipped)}):")
    for path in shipped:
        card = read_card(path)
        acc = "" if card.base_accuracy is None else f", base accuracy {card.base_accuracy:.3f}"
        print(f"  {path.stem}: {card.spec.arch} on {card.dataset or '?'}, {card.epochs} epochs{acc}")
    return 0


def _run_layers(args: argparse.Namespace) -> int:
    import torch

    from learngene.models import layer_view

    model, label = _load_target(args)
    view = layer_view(model, args.granularity)
    size = model.lg_spec.img_size
    model.eval()
    with torch.no_grad():
        outs = view.features(torch.zeros(1, 3, size, size))
    total = sum(p.numel() for p in model.parameters())
    in_layers = sum(view.layer_params())
    print(f"{label}: {view.family}, {len(view)} integral layers, {_fmt_params(in_layers)} of "
          f"{_fmt_params(total)} parameters ({100 * in_layers / total:.0f}%); output for a {size}x{size} input")
    width = max(len(n) for n in view.names)
    print(f"{'idx':>4}  {'name':<{width}}  {'params':>8}  {'in->out':>10}  output")
    for i, (name, out, (c_in, c_out)) in enumerate(zip(view.names, outs, view.io_shapes(), strict=True)):
        shape = "x".join(str(d) for d in out.shape[1:])
        print(f"{i:>4}  {name:<{width}}  {_fmt_params(view.num_params(i)):>8}  {f'{c_in}->{c_out}':>10}  {shape}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen action."""
    if args.models_command == "list":
        return _run_list(args)
    return _run_layers(args)
