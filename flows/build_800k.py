"""``build-800k``: the pretraining corpus, from the upstreams (or local CIF folders) to a finished,
deduplicated, split store. Every step is a ``crystal_data`` function; this module only orders them,
retries the network, caches finished shards and picks where the shard tasks run.

1. ``fetch`` (one task per source, retried, one at a time per source through the global concurrency
   limit ``source-<name>`` when it exists) into the landing folder; skipped for ``cif_folder`` runs.
2. ``build-corpus`` (a subflow, on Dask when ``dask_address``/``dask_workers`` is given): stage the
   raw pages (or scan the CIF folder), claim the store, build every shard as its own task (cached on
   the plan's digest and the shard index, and idempotent on disk), then write the manifest.
3. ``dedup``, split assignment, and a Markdown artifact of counts by source.

A run killed anywhere resumes when started again with the same parameters: finished fetch pages,
staged parts and shards are reused, never redone.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency

from crystal_data.build import BuildPlan, BuildReport, BuildSettings, ShardReport, build_shard, prepare_build
from crystal_data.build import finish_build as finish_store
from crystal_data.graphs.config import GraphConfig
from crystal_data.symmetry import SymmetryConfig
from flows.artifacts import counts_table
from flows.runners import shard_task_runner

SAMPLE = "sample"
"""``cif_folder`` value that means the sample bundled with crystal_data (offline, 200 crystals)."""


# ------------------------------------------------------------------------------------------- tasks
@task(retries=3, retry_delay_seconds=[30, 120, 600], retry_jitter_factor=0.5, cache_policy=NO_CACHE)
def fetch_source(
    name: str, raw: str, limit: int | None, endpoint: str | None, politeness: dict | None, extra: dict
) -> dict:
    """Fetch one source into ``raw`` (resuming); the client's own retries run inside this one's."""
    from crystal_data.sources import get_source
    from crystal_data.sources.base import FetchOptions
    from crystal_data.sources.landing import RawZone
    from crystal_data.sources.politeness import defaults_for

    options = FetchOptions(
        endpoint, limit, defaults_for(name).with_(**(politeness or {})), None, False, extra
    )
    with concurrency(f"source-{name}", occupy=1, strict=False):  # no-op unless the limit was created
        report = get_source(name).fetch(RawZone(raw, name), options)
    get_run_logger().info(
        "%s: %d records in %d pages (%d new)", name, report.records, report.pages, report.new_pages
    )
    return asdict(report)


@task(cache_policy=NO_CACHE)
def plan_build(
    out: str,
    raw: str | None,
    sources: list[str],
    cif_folder: str | None,
    cif: dict,
    graph: GraphConfig,
    symmetry: SymmetryConfig,
    shard_size: int,
) -> BuildPlan | BuildReport:
    """Stage the raw pages (or scan the CIF folder) and claim ``out``."""
    if cif_folder:
        from crystal_data.readers.cif_folder import scan_cif_folder
        from crystal_data.sample import sample_dir

        folder = sample_dir() if cif_folder == SAMPLE else Path(cif_folder)
        labels = dict(cif.get("labels", {}))
        scanned = scan_cif_folder(folder, cif.get("layout", "auto"), list(labels))
        settings = BuildSettings(
            source=cif.get("source", "cif"),
            source_version=cif.get("source_version", ""),
            label_units=labels,
            graph=graph,
            symmetry=symmetry,
            shard_size=shard_size,
        )
        info = {"input_folder": str(scanned.folder), "layout": scanned.layout}
        return prepare_build(scanned.inputs, out, settings, build_info=info)
    from crystal_data.normalize import stage_raw

    staged = stage_raw(
        raw, sources=sources, graph=graph, symmetry=symmetry, shard_size=shard_size, progress=False
    )
    return prepare_build(staged.inputs, out, staged.settings, build_info=staged.build_info)


def _shard_key(context, parameters: dict) -> str:
    return f"build-shard-{parameters['plan_key']}-{parameters['index']}"


@task(cache_key_fn=_shard_key, persist_result=True, retries=1)
def build_one_shard(
    store: str, index: int, inputs: list, settings: BuildSettings, plan_key: str
) -> ShardReport:
    """One shard, committed atomically; cached on (plan digest, index)."""
    return build_shard(store, index, inputs, settings)


@task(cache_policy=NO_CACHE)
def finish(plan: BuildPlan, built: int) -> BuildReport:
    return finish_store(plan, built)


@task(cache_policy=NO_CACHE)
def deduplicate(store: str, workers: int, priority: list[str]) -> dict:
    from crystal_data.dedup import DedupConfig, deduplicate_store

    report = deduplicate_store(store, DedupConfig(priority=tuple(priority)), workers=workers, progress=False)
    return asdict(report)


@task(cache_policy=NO_CACHE)
def assign_splits(store: str, scheme: str) -> dict:
    """Draw ``scheme`` over the store's records and store it as data (``splits/``)."""
    from crystal_data.datasets.split_files import split_table
    from crystal_data.splits import ALIGNN_80_10_10, parse_scheme

    table = split_table(Path(store), None, parse_scheme(scheme, ALIGNN_80_10_10))
    names = table.column("split").to_pylist()
    return {name: names.count(name) for name in ("train", "val", "test")}


# ------------------------------------------------------------------------------------------- flows
@flow(name="build-corpus")
def build_corpus(
    out: str,
    raw: str | None,
    sources: list[str],
    cif_folder: str | None,
    cif: dict,
    graph: GraphConfig,
    symmetry: SymmetryConfig,
    shard_size: int,
) -> dict:
    """Stage, claim, build every shard as a task (on this flow's task runner), finish."""
    logger = get_run_logger()
    plan = plan_build(out, raw, sources, cif_folder, cif, graph, symmetry, shard_size)
    if isinstance(plan, BuildReport):
        logger.info("%s is already built", plan.store)
        return {
            "store": str(plan.store),
            "shards": plan.shards,
            "shards_done_before": plan.shards,
            **_counts(plan),
        }
    pending = plan.pending()
    logger.info(
        "%s: %d shards, %d already built", plan.store, plan.num_shards, plan.num_shards - len(pending)
    )
    futures = [
        build_one_shard.submit(str(plan.store), k, plan.shard(k), plan.settings, plan.key)
        for k in range(plan.num_shards)
    ]
    for future in futures:
        future.result()
    lost = plan.pending()  # a cached result whose shard files were deleted since: build it again
    for k in lost:
        build_one_shard.with_options(refresh_cache=True).submit(
            str(plan.store), k, plan.shard(k), plan.settings, plan.key
        ).result()
    report = finish(plan, len(pending))
    return {
        "store": str(report.store),
        "shards": report.shards,
        "shards_done_before": report.shards_done_before,
        **_counts(report),
    }


def _counts(report: BuildReport) -> dict:
    return {"inputs": report.inputs, "records": report.records, "rejected": report.rejected}


@flow(name="build-800k", log_prints=True)
def build_800k(
    out: str = "stores/untagged-800k",
    sources: list[str] = ["mp", "oqmd"],  # noqa: B006 - Prefect parameters need literal defaults
    raw: str | None = None,
    limits: dict[str, int] | None = None,
    endpoints: dict[str, str] | None = None,
    politeness: dict[str, dict] | None = None,
    mp_deprecated: str = "exclude",
    mp_theoretical: str = "keep",
    cif_folder: str | None = None,
    cif_source: str = "cif",
    cif_source_version: str = "",
    cif_labels: dict[str, str] | None = None,
    cutoff: float = 8.0,
    max_neighbors: int = 12,
    symprec: float = 0.1,
    angle_tolerance: float = 5.0,
    shard_size: int = 2048,
    workers: int = 2,
    dask_address: str | None = None,
    dask_workers: int | None = None,
    dedup: bool = True,
    dedup_priority: list[str] = ["mp", "oqmd"],  # noqa: B006
    split_scheme: str | None = "alignn",
) -> dict:
    """Build the corpus store ``out``.

    Online (default): fetch ``sources`` (``limits``/``endpoints``/``politeness`` per source, e.g.
    ``{"oqmd": 5000}``) into ``raw`` (default ``<out>.raw``), then normalise. Offline: ``cif_folder``
    (a CIF folder, or ``"sample"`` for the bundled 200-crystal sample) builds from local files with
    ``cif_source``/``cif_labels`` (label -> unit). ``dask_address`` (a scheduler) or ``dask_workers``
    (a LocalCluster size) runs the shard tasks on Dask; ``workers`` sizes the dedup process pool."""
    raw = raw or f"{out}.raw"
    if not cif_folder:
        for name in sources:
            extra = {"deprecated": mp_deprecated, "theoretical": mp_theoretical} if name == "mp" else {}
            fetch_source(
                name,
                raw,
                (limits or {}).get(name),
                (endpoints or {}).get(name),
                (politeness or {}).get(name),
                extra,
            )
    graph = GraphConfig(cutoff=cutoff, max_neighbors=max_neighbors)
    symmetry = SymmetryConfig(symprec=symprec, angle_tolerance=angle_tolerance)
    cif = {"source": cif_source, "source_version": cif_source_version, "labels": cif_labels or {}}
    runner = shard_task_runner(dask_address, dask_workers)
    corpus = build_corpus.with_options(task_runner=runner) if runner is not None else build_corpus
    summary = corpus(out, raw, list(sources), cif_folder, cif, graph, symmetry, shard_size)
    if dedup:
        summary["dedup"] = deduplicate(out, workers, list(dedup_priority))
    if split_scheme:
        summary["splits"] = assign_splits(out, split_scheme)
    create_markdown_artifact(counts_table(out), key="build-800k-counts", description="records by source")
    print(f"build-800k: {summary}")
    return summary
