"""Upstream sources: one module per upstream, all behind :class:`~crystal_data.sources.base.Source`.

=====================  =========================================  ======================
name                   upstream                                   endpoint variable
=====================  =========================================  ======================
``mp``                 Materials Project via mp-api               ``MP_API_ENDPOINT``
``oqmd``               OQMD REST ``/oqmdapi/formationenergy``     ``OQMD_ENDPOINT``
``oqmd-optimade``      OQMD OPTIMADE ``/optimade/v1/structures``  ``OQMD_ENDPOINT``
``jarvis-dft-3d-2021`` JARVIS-DFT 2021.8.18 (figshare)            ``JARVIS_ENDPOINT``
``jarvis-megnet``      MP 2018.6.1 as JARVIS ``megnet`` (figshare) ``JARVIS_ENDPOINT``
=====================  =========================================  ======================
"""

from __future__ import annotations

from importlib import import_module

from crystal_data.sources.base import Source

_WHERE = {
    "mp": ("crystal_data.sources.mp", "SOURCE"),
    "oqmd": ("crystal_data.sources.oqmd", "SOURCE"),
    "oqmd-optimade": ("crystal_data.sources.optimade", "SOURCE"),
    "jarvis-dft-3d-2021": ("crystal_data.sources.jarvis", "SOURCES"),
    "jarvis-megnet": ("crystal_data.sources.jarvis", "SOURCES"),
}
SOURCE_NAMES: tuple[str, ...] = tuple(_WHERE)


def get_source(name: str) -> Source:
    """The source called ``name`` (see the table above)."""
    if name not in _WHERE:
        raise ValueError(f"unknown source {name!r}; choose one of {', '.join(SOURCE_NAMES)}")
    module, attribute = _WHERE[name]
    found = getattr(import_module(module), attribute)
    return found[name] if isinstance(found, dict) else found
