"""Prefect flows: thin orchestration over crystal_data functions (build-800k arrives with its issue)."""
