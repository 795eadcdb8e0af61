"""Resumable parallel work units: each unit's result is one Parquet file, written atomically.

A stage cuts its work into units with stable ids; a unit whose result file exists is done. Killing
the stage loses at most the units in flight; running it again does the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
        if workers <= 1:
            if initializer is not None:
                initializer(*initargs)
            for unit in pending:
                save(unit, work(unit))
                advance(1)
        else:
            with ProcessPoolExecutor(max_workers=workers, initializer=initializer, initargs=initargs) as pool:
                queue = iter(pending)
                in_flight: dict[Future, object] = {}
                while True:
                    for unit in queue:
                        in_flight[pool.submit(work, unit)] = unit
                        if len(in_flight) >= 2 * workers:
                            break
                    if not in_flight:
                        break
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        save(in_flight.pop(future), future.result())
                        advance(1)
    return [unit_path(parts_dir, u.id) for u in units]
