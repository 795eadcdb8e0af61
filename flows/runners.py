"""Where the batch tasks run: a Dask cluster when asked for, threads in this process otherwise."""

from __future__ import annotations


def shard_task_runner(dask_address: str | None, dask_workers: int | None):
    """A ``DaskTaskRunner`` on the scheduler at ``dask_address``, or on a new ``LocalCluster`` of
    ``dask_workers`` single-threaded processes; ``None`` (run in this process) when neither is given."""
    if not dask_address and not dask_workers:
        return None
    from prefect_dask import DaskTaskRunner

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": dask_workers, "threads_per_worker": 1, "processes": True}
    )
