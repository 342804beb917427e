"""The learngene registry: ancestries, condense results, learngenes and descendant runs, with lineage.

Every node has a content hash (SHA-256 of its weights, of its result file, or of its run's config)
and the ids of the nodes it was made from. Nodes are derived from what is on disk (model cards,
learngene file headers, result files, run folders) plus one small index of imports, so the registry
cannot drift from the files it describes. CLI twin: `python -m learngene registry list|show|lineage`.
"""

from learngene.registry._files import file_node, learngene_meta, safe_json
from learngene.registry._imports import imports_dir, read_imports, record_import
from learngene.registry._node import KINDS, Node, file_sha256
from learngene.registry._registry import Registry, default_assets, default_runs

__all__ = ["KINDS", "Node", "Registry", "default_assets", "default_runs", "file_node", "file_sha256", "imports_dir",
           "learngene_meta", "read_imports", "record_import", "safe_json"]
