"""Markdown tables of a finished store for the Prefect UI."""

from __future__ import annotations

from pathlib import Path


def counts_table(store: str | Path) -> str:
    """Records, rejections and duplicates by source, from the store's own files."""
    import crystal_data

    opened = crystal_data.open(store)
    records = opened.records
    rejected = opened.rejected
    duplicates = opened.duplicates
    sources = sorted(set(records["source"].to_list()) | set(rejected["source"].to_list()))
    lines = [
        f"**{store}**: {len(records):,} records, {len(rejected):,} rejected",
        "",
        "| source | version | records | rejected | duplicates |",
        "|---|---|---|---|---|",
    ]
    versions = opened.manifest.get("sources", {})
    for source in sources:
        n_dup = 0 if duplicates is None else int((duplicates["source"] == source).sum())
        lines.append(
            f"| {source} | {versions.get(source, {}).get('version', '')} "
            f"| {int((records['source'] == source).sum()):,} | {int((rejected['source'] == source).sum()):,} "
            f"| {n_dup:,} |"
        )
    reasons = opened.manifest.get("rejected_by_reason", {})
    if reasons:
        lines += ["", "| rejection reason | count |", "|---|---|"]
        lines += [f"| {code} | {count:,} |" for code, count in reasons.items()]
    return "\n".join(lines)
