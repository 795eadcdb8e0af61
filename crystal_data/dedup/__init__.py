"""Cross-source deduplication with a queryable duplicate map, and a leakage guard."""

from crystal_data.dedup.config import DedupConfig
from crystal_data.dedup.fingerprint import structure_fingerprint
from crystal_data.dedup.grouping import Member, group_bucket
from crystal_data.dedup.stage import DedupReport, deduplicate_store

__all__ = [
    "DedupConfig",
    "DedupReport",
    "Member",
    "deduplicate_store",
    "group_bucket",
    "structure_fingerprint",
]
