"""``CHANGELOG.md`` of a release: what changed since the previous release, per uid and per setting."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

FIRST_IDS = 20
"""How many ids of each list the changelog shows; ``changes.parquet`` has them all."""


@dataclass(frozen=True)
class Previous:
    """The release (or store) a new release is compared with."""

    location: str
    version: str | None
    """Its release version; ``None`` for a plain store."""
    manifest: dict
    manifest_sha256: str

    def describe(self) -> str:
        return f"release {self.version} ({self.location})" if self.version else f"store {self.location}"

    def to_dict(self) -> dict:
        return {"version": self.version, "location": self.location, "manifest_sha256": self.manifest_sha256}


def change_counts(changes: pa.Table, records: int) -> dict[str, int]:
    """Added, removed, changed (and by what), unchanged."""
    kind = changes.column("change")
    counts = {name: pc.sum(pc.equal(kind, name)).as_py() or 0 for name in ("added", "removed", "changed")}
    for flag in ("structure_changed", "labels_changed"):
        counts[flag] = pc.sum(changes.column(flag).fill_null(False)).as_py() or 0
    counts["unchanged"] = records - counts["added"] - counts["changed"]
    return counts


def setting_changes(old: dict, new: dict) -> list[str]:
    """Human-readable differences of the settings that shape every record (empty when equal)."""
    lines = []
    old_sources = {k: v.get("version") for k, v in old.get("sources", {}).items()}
    new_sources = {k: v.get("version") for k, v in new.get("sources", {}).items()}
    for name in sorted(set(old_sources) | set(new_sources)):
        if old_sources.get(name) != new_sources.get(name):
            lines.append(f"source `{name}` version: {old_sources.get(name)!r} → {new_sources.get(name)!r}")
    for key, what in (("labels", "labels (units)"), ("symmetry", "symmetry settings")):
        if old.get(key) != new.get(key):
            lines.append(f"{what}: `{_short(old.get(key))}` → `{_short(new.get(key))}`")
    old_graph = old.get("graphs", {}).get(old.get("default_graphs"), {})
    new_graph = new.get("graphs", {}).get(new.get("default_graphs"), {})
    if old_graph != new_graph:
        lines.append(f"graph featurizer: `{_short(old_graph)}` → `{_short(new_graph)}`")
    old_dedup, new_dedup = old.get("dedup", {}).get("config"), new.get("dedup", {}).get("config")
    if old_dedup != new_dedup:
        lines.append(f"dedup settings: `{_short(old_dedup)}` → `{_short(new_dedup)}`")
    return lines


def _short(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(", ", ": "))


def render_changelog(
    version: str, previous: Previous | None, changes: pa.Table, counts: dict[str, int], settings: list[str]
) -> str:
    """The Markdown changelog."""
    lines = [f"# Changelog of release {version}", ""]
    if previous is None:
        lines += [
            f"First release: no earlier release to compare with. All {counts['added']:,} records are "
            "listed as added in `changes.parquet`.",
            "",
        ]
        return "\n".join(lines)
    lines += [
        f"Compared with {previous.describe()}, manifest sha256 `{previous.manifest_sha256}`.",
        "",
        "Records are matched by uid. A record is *changed* when its structure (lattice, atomic numbers, "
        "fractional coordinates) or its labels differ in any stored bit. Every id is in "
        f"`changes.parquet` (`uid`, `change`, `structure_changed`, `labels_changed`); the lists below show "
        f"the first {FIRST_IDS} of each.",
        "",
        "| | records |",
        "|---|---:|",
        f"| added | {counts['added']:,} |",
        f"| removed | {counts['removed']:,} |",
        f"| changed | {counts['changed']:,} (structure {counts['structure_changed']:,}, "
        f"labels {counts['labels_changed']:,}) |",
        f"| unchanged | {counts['unchanged']:,} |",
        "",
        "## Settings",
        "",
        *(
            [f"- {line}" for line in settings]
            or ["No change in source versions, labels, symmetry, graph or dedup settings."]
        ),
        "",
    ]
    for kind in ("added", "removed", "changed"):
        rows = changes.filter(pc.equal(changes.column("change"), kind))
        lines += [f"## {kind.capitalize()} ({rows.num_rows:,})", ""]
        if rows.num_rows == 0:
            lines += ["None.", ""]
            continue
        for row in rows.slice(0, FIRST_IDS).to_pylist():
            what = [n for n in ("structure", "labels") if row[f"{n}_changed"]]
            lines.append(f"- `{row['uid']}`" + (f": {' and '.join(what)}" if what else ""))
        if rows.num_rows > FIRST_IDS:
            lines.append(f"- … and {rows.num_rows - FIRST_IDS:,} more (`changes.parquet`)")
        lines.append("")
    return "\n".join(lines)
