"""Operation mixes and key choosers (YCSB's core workload model): spec, key choosers, per-worker streams."""

from bench.ops.choosers import HotspotKeys, KeyChooser, LatestKeys, UniformKeys, ZipfianKeys, make_chooser
from bench.ops.mix import YcsbSpec
from bench.ops.stream import OpBatch, OpKind, OpStream

__all__ = [
    "HotspotKeys",
    "KeyChooser",
    "LatestKeys",
    "OpBatch",
    "OpKind",
    "OpStream",
    "UniformKeys",
    "YcsbSpec",
    "ZipfianKeys",
    "make_chooser",
]
