"""Data sets, class splits and few-shot tasks.

`load_dataset("shapes")` gives the embedded procedural data set (no download); "cifar100" and
"folder:<path>" read files from disk. Images stay uint8 (N, 3, H, W) until `normalize`; a large folder's
are streamed (`ImageSet.streamed`: a `LazyImages` read when indexed, see `learngene.data.stream`).
"""

from learngene.data.base import MEAN, STD, ClassSplit, ImageSet, Part, derive_seed, normalize, preview_grid
from learngene.data.sources import DATASETS, default_data_root, load_dataset
from learngene.data.stream import LazyImages
from learngene.data.tasks import SUPPORT_RESERVE, Task, holdout_split, sample_task, sample_tasks

__all__ = [
    "DATASETS",
    "MEAN",
    "STD",
    "SUPPORT_RESERVE",
    "ClassSplit",
    "ImageSet",
    "LazyImages",
    "Part",
    "Task",
    "default_data_root",
    "derive_seed",
    "holdout_split",
    "load_dataset",
    "normalize",
    "preview_grid",
    "sample_task",
    "sample_tasks",
]
