"""``crystal-data``: build, inspect and verify stores."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="Build, inspect and verify crystal-graph stores.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _parse_labels(labels: list[str]) -> dict[str, str]:
    units = {}
    for spec in labels:
        name, _, unit = spec.partition(":")
        if not name:
            raise typer.BadParameter(f"label {spec!r}: expected NAME or NAME:UNIT")
        units[name] = unit
    return units


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _show(store_path: Path, plot: Path | None) -> None:
    from crystal_data.store import open_store
    from crystal_data.summary import plot_summary, render_summary, summarize

    summary = summarize(open_store(store_path))
    render_summary(summary, console)
    if plot is not None:
        console.print(f"plot: {plot_summary(summary, plot)}")


@app.command()
def build(
    from_cif: Annotated[Path, typer.Option("--from-cif", help="Folder of CIF files.")],
    out: Annotated[Path, typer.Option("--out", help="Store folder to create (or resume).")],
    workers: Annotated[int, typer.Option(help="Worker processes.")] = os.cpu_count() or 1,
    layout: Annotated[str, typer.Option(help="auto, cgcnn, untagged-800k or plain.")] = "auto",
    source: Annotated[str, typer.Option(help="Source name; uids are SOURCE:ID.")] = "cif",
    source_version: Annotated[str, typer.Option(help="Version of the source data.")] = "",
    label: Annotated[
        list[str], typer.Option(help="id_prop.csv label column as NAME[:UNIT], in column order; repeat.")
    ] = [],  # noqa: B006 - typer needs a literal default
    shard_size: Annotated[int, typer.Option(help="Crystals per shard.")] = 2048,
    symprec: Annotated[float, typer.Option(help="spglib distance tolerance (Å).")] = 0.1,
    angle_tolerance: Annotated[float, typer.Option(help="spglib angle tolerance (degrees).")] = 5.0,
    cutoff: Annotated[float, typer.Option(help="Neighbour cutoff (Å).")] = 8.0,
    max_neighbors: Annotated[int, typer.Option(help="Nearest neighbours per atom.")] = 12,
    overwrite: Annotated[bool, typer.Option(help="Delete OUT first instead of resuming.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Also write a summary figure (PNG).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    dedup: Annotated[bool, typer.Option(help="Deduplicate the store after building it.")] = False,
) -> None:
    """Build a store from a folder of CIF files; re-running resumes an interrupted build."""
    from crystal_data.build import BuildConflict, BuildSettings, build_from_cif_folder
    from crystal_data.graphs.config import GraphConfig
    from crystal_data.symmetry import SymmetryConfig

    try:
        settings = BuildSettings(
            source=source,
            source_version=source_version,
            label_units=_parse_labels(label),
            graph=GraphConfig(cutoff=cutoff, max_neighbors=max_neighbors),
            symmetry=SymmetryConfig(symprec=symprec, angle_tolerance=angle_tolerance),
            shard_size=shard_size,
        )
        report = build_from_cif_folder(
            from_cif,
            out,
            settings,
            layout_name=layout,
            workers=workers,
            overwrite=overwrite,
            progress=progress,
        )
    except (BuildConflict, FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    _finish_build(report, dedup, workers, progress, plot)


def _finish_build(report, dedup: bool, workers: int, progress: bool, plot: Path | None) -> None:
    resumed = (
        f", {report.shards_done_before} of {report.shards} shards were already done"
        if (report.shards_done_before)
        else ""
    )
    console.print(f"built {report.store} in {report.seconds:.1f} s{resumed}")
    if dedup:
        from crystal_data.dedup import DedupConfig

        _run_dedup(report.store, DedupConfig(), [], workers, progress)
    _show(report.store, plot)


def _log_to_stderr() -> None:
    import logging

    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=err)])


@app.command()
def fetch(
    source: Annotated[
        str, typer.Argument(help="mp, oqmd, oqmd-optimade, jarvis-dft-3d-2021 or jarvis-megnet.")
    ],
    raw: Annotated[Path, typer.Option("--raw", help="Landing folder; pages go to RAW/SOURCE/.")],
    limit: Annotated[int | None, typer.Option(help="Stop after this many records.")] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Base URL (a mirror, or a loopback server in tests).")
    ] = None,
    page_size: Annotated[int | None, typer.Option(help="Records per request (source default).")] = None,
    rate: Annotated[float | None, typer.Option(help="Requests per second at most.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests in flight at most.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds before a request times out.")] = None,
    retries: Annotated[int | None, typer.Option(help="Retries of a failed request.")] = None,
    deprecated: Annotated[str, typer.Option(help="MP deprecated materials: exclude or include.")] = "exclude",
    theoretical: Annotated[str, typer.Option(help="MP theoretical materials: keep or exclude.")] = "keep",
    filter_: Annotated[
        str | None, typer.Option("--filter", help="OQMD/OPTIMADE filter expression, passed through.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Fetch a source into the raw landing zone; re-running resumes after the last complete page."""
    from crystal_data.sources import get_source
    from crystal_data.sources.base import FetchOptions
    from crystal_data.sources.http import FetchError
    from crystal_data.sources.landing import FetchConflict, RawZone
    from crystal_data.sources.politeness import defaults_for

    _log_to_stderr()
    try:
        chosen = get_source(source)
        politeness = defaults_for(source).with_(
            requests_per_second=rate, concurrency=concurrency, timeout_s=timeout, max_retries=retries
        )
        extra: dict[str, str] = {}
        if source == "mp":
            extra = {"deprecated": deprecated, "theoretical": theoretical}
        if filter_:
            if not source.startswith("oqmd"):
                raise ValueError(f"--filter applies to oqmd and oqmd-optimade, not {source}")
            extra["filter"] = filter_
        options = FetchOptions(endpoint, limit, politeness, page_size, progress, extra)
        report = chosen.fetch(RawZone(raw, source), options)
    except (FetchConflict, FetchError, ValueError, RuntimeError) as exc:
        raise _fail(str(exc), code=1) from None
    state = "complete" if report.complete else "stopped at --limit" if limit else "incomplete"
    console.print(
        f"{source}: {report.records:,} records in {report.pages:,} pages ({report.new_pages:,} new, "
        f"{report.seconds:.1f} s); {state}; raw pages in {raw / source}"
    )


@app.command()
def normalize(
    raw: Annotated[Path, typer.Option("--raw", help="Landing folder written by fetch.")],
    out: Annotated[Path, typer.Option("--out", help="Store folder to create (or resume).")],
    source: Annotated[
        list[str], typer.Option(help="Sources to include, in priority order; repeat (default: all).")
    ] = [],  # noqa: B006 - typer needs a literal default
    workers: Annotated[int, typer.Option(help="Worker processes.")] = os.cpu_count() or 1,
    shard_size: Annotated[int, typer.Option(help="Crystals per shard.")] = 2048,
    symprec: Annotated[float, typer.Option(help="spglib distance tolerance (Å).")] = 0.1,
    angle_tolerance: Annotated[float, typer.Option(help="spglib angle tolerance (degrees).")] = 5.0,
    overwrite: Annotated[bool, typer.Option(help="Delete OUT first instead of resuming.")] = False,
    dedup: Annotated[bool, typer.Option(help="Deduplicate the store after building it.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Also write a summary figure (PNG).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Turn fetched raw pages into a store (records, symmetry, graphs); never touches the network."""
    from crystal_data.build import BuildConflict
    from crystal_data.normalize import normalize as run_normalize
    from crystal_data.symmetry import SymmetryConfig

    _log_to_stderr()
    try:
        report = run_normalize(
            raw,
            out,
            sources=source or None,
            symmetry=SymmetryConfig(symprec=symprec, angle_tolerance=angle_tolerance),
            shard_size=shard_size,
            workers=workers,
            overwrite=overwrite,
            progress=progress,
        )
    except (BuildConflict, FileNotFoundError, ValueError, RuntimeError) as exc:
        raise _fail(str(exc)) from None
    _finish_build(report, dedup, workers, progress, plot)


@app.command()
def info(
    store: Annotated[Path, typer.Argument(help="Store folder.")],
    plot: Annotated[Path | None, typer.Option(help="Also write a summary figure (PNG).")] = None,
) -> None:
    """Summarise a store: counts, rejections, crystal systems, space groups, graph sizes."""
    try:
        _show(store, plot)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise _fail(str(exc)) from None


@app.command()
def verify(store: Annotated[Path, typer.Argument(help="Store folder.")]) -> None:
    """Check every checksum and count against the manifest; exit 1 on any mismatch."""
    from crystal_data.store import verify_store

    problems = verify_store(store)
    for problem in problems:
        err.print(f"[red]FAIL[/red] {problem}")
    if problems:
        raise typer.Exit(1)
    console.print(f"[green]OK[/green] {store}: every file and count matches the manifest")


@app.command()
def graphs(
    store: Annotated[Path, typer.Argument(help="Store folder.")],
    kind: Annotated[str, typer.Option(help="Featurizer to add: alignn (atom graph + line graph).")],
    workers: Annotated[int, typer.Option(help="Worker processes.")] = os.cpu_count() or 1,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Add a second featurizer's graphs to a finished store; re-running resumes an interrupted run."""
    from crystal_data.graphs.config import AlignnGraphConfig
    from crystal_data.store.add_graphs import add_graphs

    if kind != "alignn":
        raise _fail(f"--kind {kind!r}: only 'alignn' can be added (knn graphs come with the build)")
    try:
        report = add_graphs(store, AlignnGraphConfig(), workers=workers, progress=progress)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise _fail(str(exc), code=1) from None
    done = f", {report.shards_done_before} of {report.shards} shards were already done"
    console.print(
        f"{store}: {kind} graphs {report.graphs} in {report.seconds:.1f} s"
        + (done if report.shards_done_before else "")
        + f"; read them with crystal_data.open({str(store)!r}, graphs={report.graphs!r})"
    )


@app.command()
def dedup(
    store: Annotated[Path, typer.Argument(help="Store folder.")],
    workers: Annotated[int, typer.Option(help="Worker processes.")] = os.cpu_count() or 1,
    priority: Annotated[
        str, typer.Option(help="Sources in canonical-priority order, comma-separated.")
    ] = "mp,oqmd",
    against: Annotated[
        list[Path], typer.Option(help="Also flag records matching any crystal of this store; repeat.")
    ] = [],  # noqa: B006 - typer needs a literal default
    ltol: Annotated[float, typer.Option(help="StructureMatcher fractional length tolerance.")] = 0.2,
    stol: Annotated[float, typer.Option(help="StructureMatcher site tolerance.")] = 0.3,
    angle_tol: Annotated[float, typer.Option(help="StructureMatcher angle tolerance (degrees).")] = 5.0,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Find duplicate crystals within a store (and, with --against, leaks into other stores)."""
    from crystal_data.dedup import DedupConfig

    config = DedupConfig(
        ltol=ltol, stol=stol, angle_tol=angle_tol, priority=tuple(p for p in priority.split(",") if p)
    )
    try:
        _run_dedup(store, config, list(against), workers, progress)
    except (FileNotFoundError, KeyError) as exc:
        raise _fail(f"{store}: not a finished store ({exc})") from None


def _run_dedup(store: Path, config, against: list[Path], workers: int, progress: bool) -> None:
    from crystal_data.dedup import deduplicate_store
    from crystal_data.dedup.leakage import find_leaks

    report = deduplicate_store(store, config, workers=workers, progress=progress)
    methods = ", ".join(f"{k} {v:,}" for k, v in report.by_method.items()) or "none"
    console.print(
        f"{store}: {report.records:,} records, {report.canonical:,} canonical, "
        f"{report.duplicates:,} duplicates ({methods}); "
        f"{report.fit_calls:,} StructureMatcher fits in {report.seconds:.1f} s"
    )
    if against:
        leaks = find_leaks(store, against, config, workers=workers, progress=progress)
        console.print(
            f"leakage: {leaks.leaked:,} of {leaks.checked:,} records match a crystal of "
            f"{', '.join(map(str, against))} ({leaks.candidates:,} candidates, {leaks.fit_calls:,} fits)"
        )


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Store folder to (re)create.")] = Path("demo-store"),
    workers: Annotated[int, typer.Option(help="Worker processes.")] = os.cpu_count() or 1,
) -> None:
    """Build the embedded sample (200 real Materials Project crystals), verify it and summarise it."""
    from crystal_data.build import BuildSettings, build_from_cif_folder
    from crystal_data.sample import SAMPLE_LABELS, SAMPLE_SOURCE, SAMPLE_SOURCE_VERSION, sample_dir
    from crystal_data.store import verify_store

    settings = BuildSettings(
        source=SAMPLE_SOURCE, source_version=SAMPLE_SOURCE_VERSION, label_units=dict(SAMPLE_LABELS)
    )
    report = build_from_cif_folder(sample_dir(), out, settings, workers=workers, overwrite=True)
    console.print(f"built {report.store} from the embedded sample in {report.seconds:.1f} s")
    problems = verify_store(out)
    if problems:
        raise _fail("; ".join(problems), code=1)
    console.print(f"[green]verified[/green] {out}")
    _show(out, out.with_name(out.name + "-summary.png"))


@app.command("load")
def load_dataset(
    name: Annotated[str, typer.Argument(help="jarvis, mp2018, oqmd-exp, untagged-800k, or a store path.")],
    target: Annotated[str | None, typer.Option(help="Target label (upstream name); none: list them.")] = None,
    scheme: Annotated[
        str | None, typer.Option(help="alignn (the paper's), 20-10-70, 40-10-50, 60-10-30, A-B-C, nA-B-C.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Reseed the split (default 123).")] = None,
    offline: Annotated[
        bool, typer.Option(help="Never touch the network (also $CRYSTAL_DATA_OFFLINE).")
    ] = False,
    workers: Annotated[int, typer.Option(help="Worker processes for a build.")] = os.cpu_count() or 1,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Download, build and split a dataset once (later runs read the cache); print its split sizes."""
    from crystal_data.datasets import CorruptSplit, DatasetNotAvailable
    from crystal_data.datasets.split_files import split_file
    from crystal_data.loading import load

    _log_to_stderr()
    options = dict(seed=seed, offline=offline or None, workers=workers, progress=progress)
    try:
        everything = load(name, "all", target, **options)
        if target is None:
            targets = ", ".join(everything.store.label_units) or "none"
            console.print(
                f"{name}: {len(everything):,} crystals in {everything.store_path}; targets: {targets}"
            )
            return
        splits = {
            split: load(name, split, target, scheme=scheme, **options) for split in ("train", "val", "test")
        }
    except (DatasetNotAvailable, CorruptSplit, FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc), code=1) from None
    train = splits["train"]
    sizes = " / ".join(f"{split} {len(ds):,}" for split, ds in splits.items())
    missing = sum(len(ds.missing) for ds in splits.values())
    console.print(
        f"{name} {target} ({everything.unit}): {len(everything):,} with the target; split "
        f"{train.scheme.name} (seed {train.scheme.seed}): {sizes}"
        + (f"; {missing:,} split entries are not in the store (rejected by the build)" if missing else "")
    )
    console.print(
        f"store {train.store_path}; split file {train.store_path / split_file(target, train.scheme)}"
    )


@app.command()
def release(
    store: Annotated[Path, typer.Argument(help="Finished store folder to release.")],
    version: Annotated[str, typer.Option("--version", help="Release version, e.g. 2026.11.0.")],
    to: Annotated[
        str, typer.Option("--to", help="Folder or fsspec URL holding releases; writes TO/VERSION/.")
    ],
    previous: Annotated[
        str | None, typer.Option(help="Release to compare with (default: the latest one in TO).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Publish a verified store as an immutable release: files, manifest, dataset card, changelog."""
    from crystal_data.release import ReleaseError, publish_release

    try:
        report = publish_release(store, version, to, previous=previous, progress=progress)
    except (ReleaseError, FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc), code=1) from None
    against = f"against {report.previous}" if report.previous else "first release"
    console.print(
        f"released {store} as {report.version} at {report.location}: {report.records:,} records, "
        f"{report.files:,} files, {report.bytes / 1e6:.1f} MB in {report.seconds:.1f} s"
    )
    console.print(
        f"changes ({against}): {report.added:,} added, {report.removed:,} removed, {report.changed:,} changed"
    )
    console.print(f"manifest sha256 {report.manifest_sha256}")


if __name__ == "__main__":
    app()
