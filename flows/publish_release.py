"""``publish-release``: an immutable, carded, checksummed release of a finished store
(:func:`crystal_data.release.publish_release`)."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.artifacts import counts_table


@flow(name="publish-release", log_prints=True)
def publish_release(store: str, version: str, dest: str, previous: str | None = None) -> dict:
    """Verify ``store`` and write it as release ``version`` under ``dest`` (a folder or fsspec URL)."""
    from crystal_data.release import publish_release as publish

    report = publish(store, version, dest, previous=previous, progress=False)
    create_markdown_artifact(
        counts_table(store), key="publish-release-counts", description=f"release {version}"
    )
    summary = asdict(report) if is_dataclass(report) else dict(report)
    print(f"publish-release: {summary}")
    return {
        k: str(v) if not isinstance(v, (int, float, str, bool, type(None), dict, list)) else v
        for k, v in summary.items()
    }
