"""A loopback Materials Project: ``/heartbeat`` and ``/materials/summary/`` in the real envelope,
with documents built from pymatgen ``Structure.as_dict()`` of textbook cells."""

from __future__ import annotations

import numpy as np
from pymatgen.core import Lattice, Structure

from tests.upstream import Reply, Request, Upstream

DB_VERSION = "2025.09.25"
API_KEY = "TESTKEYmp0123456789abcdefghijklm"  # 32 characters, as mp-api demands
assert len(API_KEY) == 32


def textbook() -> dict[str, Structure]:
    return {
        "mp-149": Structure(Lattice.cubic(5.468), ["Si"] * 8, _diamond()),
        "mp-22862": Structure.from_spacegroup(
            "Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
        ),
        "mp-2133": Structure.from_spacegroup(
            "P6_3mc", Lattice.hexagonal(3.25, 5.21), ["Zn", "O"], [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]]
        ),
    }


def _diamond() -> list[list[float]]:
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    return np.vstack([fcc, fcc + 0.25]).tolist()


def summary_doc(material_id: str, structure: Structure, **overrides) -> dict:
    doc = {
        "material_id": material_id,
        "formula_pretty": structure.composition.reduced_formula,
        "nsites": len(structure),
        "structure": structure.as_dict(),
        "symmetry": {
            "crystal_system": "Cubic",
            "symbol": "?",
            "number": 1,
            "symprec": 0.1,
            "version": "2.5.0",
        },
        "formation_energy_per_atom": -1.0 - 0.001 * len(structure),
        "band_gap": 0.5,
        "energy_above_hull": 0.0,
        "deprecated": False,
        "theoretical": False,
        "last_updated": "2024-01-01T00:00:00",
    }
    doc.update(overrides)
    return doc


def corpus(n_generated: int) -> list[dict]:
    """The textbook cells, a deprecated and a theoretical one, a disordered one, a doc whose energy is
    null, then ``n_generated`` rock-salt cells with distinct lattice constants (``mp-1000000+k``)."""
    docs = [summary_doc(mid, s) for mid, s in textbook().items()]
    salt = textbook()["mp-22862"]
    docs.append(summary_doc("mp-999001", salt, deprecated=True))
    docs.append(summary_doc("mp-999002", salt, theoretical=True))
    disordered = salt.copy()
    disordered.replace_species({"Na": {"Na": 0.5, "K": 0.5}})
    docs.append(summary_doc("mp-999003", disordered))
    docs.append(summary_doc("mp-999004", salt, formation_energy_per_atom=None))
    for k in range(n_generated):
        cell = Structure(Lattice.cubic(4.0 + 0.001 * k), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        docs.append(summary_doc(f"mp-{1000000 + k}", cell))
    return docs


class FakeMP:
    """The routes of a loopback MP; ``max_limit`` caps page sizes like the real server."""

    def __init__(self, docs: list[dict], max_limit: int = 1000, honour_filters: bool = True):
        self.docs = docs
        self.max_limit = max_limit
        self.honour_filters = honour_filters

    def routes(self) -> dict:
        return {"/heartbeat": self.heartbeat, "/materials/summary/": self.summary}

    def heartbeat(self, request: Request) -> Reply:
        return Reply.json({"db_version": DB_VERSION, "access_controlled_batch_ids": [], "version": "0.86.3"})

    def summary(self, request: Request) -> Reply:
        if request.headers.get("x-api-key") != API_KEY:
            return Reply.json({"detail": "Invalid or missing API key"}, status=401)
        docs = self.docs
        for flag in ("deprecated", "theoretical"):
            if flag in request.query and self.honour_filters:
                wanted = request.query[flag].lower() == "true"
                docs = [d for d in docs if bool(d[flag]) == wanted]
        skip = request.int_param("_skip", 0)
        limit = min(request.int_param("_limit", 100), self.max_limit)
        fields = request.query.get("_fields")
        page = docs[skip : skip + limit]
        if fields:
            keep = fields.split(",")
            page = [{k: d[k] for k in keep if k in d} for d in page]
        meta = {
            "api_version": "0.84.0",
            "time_stamp": "2026-11-24T00:00:00",
            "total_doc": len(docs),
            "max_limit": self.max_limit,
            "default_fields": ["material_id", "formula_pretty", "last_updated"],
        }
        return Reply.json({"data": page, "errors": [], "meta": meta})


def serve(docs: list[dict], max_limit: int = 1000, honour_filters: bool = True) -> Upstream:
    return Upstream(FakeMP(docs, max_limit, honour_filters).routes())
