"""Prefect flows: thin orchestration over ``crystal_data`` functions.

- ``build-800k`` (:mod:`flows.build_800k`): fetch, normalise, graphs and shards, dedup, splits.
- ``publish-release`` (:mod:`flows.publish_release`): an immutable, carded release of a store.

Deployments are declared in ``prefect.yaml`` at the repository root; docs/flows.md has the commands.
"""
