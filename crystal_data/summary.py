"""What a store holds, as numbers (for the terminal) and as a figure."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crystal_data.schema import CRYSTAL_SYSTEMS
from crystal_data.store.reader import Store


@dataclass(frozen=True)
class StoreSummary:
    path: str
    counts: dict[str, int]
    rejected_by_reason: dict[str, int]
    parsers: dict[str, int]
    crystal_systems: dict[str, int]
    """Includes ``"unknown"`` for records whose symmetry analysis failed."""
    spacegroups: dict[int, int]
    atoms_per_graph: np.ndarray
    edges_per_graph: np.ndarray
    atoms_below_max_degree: int
    isolated_atoms: int
    max_neighbors: int
    dedup: dict | None = None
    """The manifest's dedup counts, once ``crystal-data dedup`` has run."""
    leakage: dict | None = None


def summarize(store: Store) -> StoreSummary:
    systems: Counter[str] = Counter()
    spacegroups: Counter[int] = Counter()
    atoms, edges = [], []
    below = isolated = 0
    max_neighbors = int(store.graph_config["max_neighbors"])
    for shard in store.iter_shards():
        columns = shard.columns
        systems.update(s or "unknown" for s in columns["crystal_system"])
        spacegroups.update(n for n in columns["spacegroup_number"] if n is not None)
        atoms.append(np.diff(shard.node_ptr))
        edge_counts = np.diff(shard.edge_ptr)
        edges.append(edge_counts)
        owner = np.repeat(shard.node_ptr[:-1], edge_counts)
        degree = np.bincount(shard.edge_index[1] + owner, minlength=len(shard.atomic_numbers))
        below += int((degree < max_neighbors).sum())
        isolated += int((degree == 0).sum())
    order = [*CRYSTAL_SYSTEMS, "unknown"]
    return StoreSummary(
        path=str(store.path),
        counts=dict(store.manifest["counts"]),
        rejected_by_reason=dict(store.manifest["rejected_by_reason"]),
        parsers=dict(store.manifest["parsers"]),
        crystal_systems={name: systems[name] for name in order if systems[name]},
        spacegroups=dict(sorted(spacegroups.items())),
        atoms_per_graph=np.concatenate(atoms) if atoms else np.zeros(0, int),
        edges_per_graph=np.concatenate(edges) if edges else np.zeros(0, int),
        atoms_below_max_degree=below,
        isolated_atoms=isolated,
        max_neighbors=max_neighbors,
        dedup=store.manifest.get("dedup", {}).get("counts"),
        leakage=store.manifest.get("leakage", {}).get("counts"),
    )


def render_summary(summary: StoreSummary, console=None, top_spacegroups: int = 10) -> None:
    """Print the summary as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    c = summary.counts
    console.print(f"[bold]{summary.path}[/bold]")
    console.print(
        f"inputs {c['inputs']:,}  records {c['records']:,}  rejected {c['rejected']:,}  "
        f"shards {c['shards']}  atoms {c['nodes']:,}  edges {c['edges']:,}"
    )
    if summary.parsers:
        console.print("parsed by: " + ", ".join(f"{k} {v:,}" for k, v in summary.parsers.items()))
    if summary.dedup:
        d = summary.dedup
        methods = ", ".join(f"{k} {v:,}" for k, v in d["by_method"].items()) or "none"
        console.print(f"dedup: {d['canonical']:,} canonical, {d['duplicates']:,} duplicates ({methods})")
    if summary.leakage:
        console.print(f"leakage: {summary.leakage['leaked']:,} records match another store")
    if summary.rejected_by_reason:
        table = Table("rejection reason", "count", title="Rejected")
        for reason, count in summary.rejected_by_reason.items():
            table.add_row(reason, f"{count:,}")
        console.print(table)
    total = max(1, c["records"])
    table = Table("crystal system", "records", "share", title="Crystal systems")
    for name, count in summary.crystal_systems.items():
        table.add_row(name, f"{count:,}", f"{100 * count / total:.1f} %")
    console.print(table)
    top = sorted(summary.spacegroups.items(), key=lambda kv: (-kv[1], kv[0]))[:top_spacegroups]
    table = Table(
        "space group",
        "records",
        title="Space groups",
        caption=f"top {len(top)} of {len(summary.spacegroups)}",
    )
    for number, count in top:
        table.add_row(str(number), f"{count:,}")
    console.print(table)
    table = Table("per graph", "min", "median", "mean", "p99", "max", title="Graph sizes")
    for name, values in (("atoms", summary.atoms_per_graph), ("edges", summary.edges_per_graph)):
        if len(values):
            stats = (values.min(), np.median(values), values.mean(), np.percentile(values, 99), values.max())
            table.add_row(name, *(f"{v:,.0f}" if k != 2 else f"{v:,.1f}" for k, v in enumerate(stats)))
    console.print(table)
    console.print(
        f"atoms with fewer than {summary.max_neighbors} neighbours: {summary.atoms_below_max_degree:,}; "
        f"with none: {summary.isolated_atoms:,}"
    )


def plot_summary(summary: StoreSummary, path: str | Path) -> Path:
    """Crystal systems, space groups, atoms and edges per graph in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    names = list(summary.crystal_systems)
    axes[0, 0].bar(names, [summary.crystal_systems[n] for n in names], color="tab:blue")
    axes[0, 0].set_title("crystal systems")
    axes[0, 0].tick_params(axis="x", rotation=35)
    axes[0, 1].bar(
        list(summary.spacegroups), list(summary.spacegroups.values()), width=1.0, color="tab:orange"
    )
    axes[0, 1].set_title("space groups")
    axes[0, 1].set_xlabel("space-group number")
    axes[0, 1].set_xlim(0, 231)
    axes[1, 0].hist(summary.atoms_per_graph, bins=40, color="tab:green")
    axes[1, 0].set_title("atoms per graph")
    axes[1, 1].hist(summary.edges_per_graph, bins=40, color="tab:red")
    axes[1, 1].set_title("edges per graph")
    for ax in axes.flat:
        ax.set_ylabel("records")
    fig.suptitle(f"{Path(summary.path).name}: {summary.counts['records']:,} crystals")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
