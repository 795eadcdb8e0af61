"""Parallel work for the stages: a bounded process-pool map, and resumable work units whose result
is one Parquet file each, written atomically.

A stage cuts its work into units with stable ids; a unit whose result file exists is done. Killing
the stage loses at most the units in flight; running it again does the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from crystal_data.progress import progress_bar
from crystal_data.store.atomic import atomic_write


def unit_path(parts_dir: Path, unit_id: int) -> Path:
    return parts_dir / f"unit-{unit_id:05d}.parquet"


def run_units(
    parts_dir: Path,
    units: Sequence,
    work: Callable[[object], pa.Table],
    *,
    workers: int,
    progress: bool,
    label: str,
    initializer: Callable | None = None,
    initargs: tuple = (),
) -> list[Path]:
    """Run ``work(unit)`` for every unit (each has an ``id``) without a result yet; return all result
    paths in unit order. ``work`` must be a module-level function (it crosses process boundaries)."""
    parts_dir.mkdir(parents=True, exist_ok=True)
    pending = [u for u in units if not unit_path(parts_dir, u.id).exists()]
    tmp = parts_dir.parent / "tmp"

    def save(unit, table: pa.Table) -> None:
        atomic_write(
            unit_path(parts_dir, unit.id), lambda p: pq.write_table(table, p, compression="zstd"), tmp
        )

    with progress_bar(progress, len(pending), label) as advance:
        for unit, table in parallel_map(
            work, pending, workers=workers, initializer=initializer, initargs=initargs
        ):
            save(unit, table)
            advance(1)
    return [unit_path(parts_dir, u.id) for u in units]


def parallel_map(
    fn: Callable,
    items: Iterable,
    *,
    workers: int,
    initializer: Callable | None = None,
    initargs: tuple = (),
    queue_per_worker: int = 4,
) -> Iterator[tuple[object, object]]:
    """Yield ``(item, fn(item))`` as results complete: in this process when ``workers <= 1``, else in
    a process pool that never holds more than ``queue_per_worker`` tasks per worker, so memory stays
    flat whatever the number of items. ``fn`` must be picklable (a module-level function or a
    ``functools.partial`` of one)."""
    if workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        for item in items:
            yield item, fn(item)
        return
    queue = iter(items)
    with ProcessPoolExecutor(max_workers=workers, initializer=initializer, initargs=initargs) as pool:
        in_flight: dict[Future, object] = {}
        while True:
            for item in queue:
                in_flight[pool.submit(fn, item)] = item
                if len(in_flight) >= queue_per_worker * workers:
                    break
            if not in_flight:
                return
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                yield in_flight.pop(future), future.result()
