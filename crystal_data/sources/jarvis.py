"""JARVIS datasets from figshare: one zip of one JSON list per dataset (docs/sources-jarvis.md).

Two sources:

- ``jarvis-dft-3d-2021``: JARVIS-DFT 3D of 2021-08-18 (jarvis-tools ``dft_3d_2021``), 55,723 entries,
  the CrysGNN/ALIGNN benchmark. Records are ``jarvis:<jid>`` (``jarvis:JVASP-1002``).
- ``jarvis-megnet``: the Materials Project 2018.6.1 snapshot of the MEGNet paper as JARVIS converted it
  (jarvis-tools ``megnet``), 69,239 entries. Records are ``megnet:<mp id>`` (``megnet:mp-149``), not
  ``mp:``: the snapshot's structures and labels are not those of today's Materials Project, and a
  store holding both must keep them apart.

``fetch`` downloads the zip once (resumable, size-capped, content- and sha256-checked:
:mod:`crystal_data.sources.download`) into ``RAW/<source>/files/`` and parses it once to count and
check the entries; ``records`` re-verifies the file's sha256, then yields the entries in the JSON order
(splits are defined on that order). The zip is never extracted to disk: only the expected member is
read, with a cap on its decompressed size. ``FetchOptions.limit`` and ``page_size`` do not apply: a
dataset is one file.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from crystal_data.errors import RejectedInput
from crystal_data.record import CrystalRecord
from crystal_data.sources.base import FetchOptions, RawRejection, Source
from crystal_data.sources.download import (
    check_zip_member,
    download_file,
    read_zip_member,
    verify_cached,
)
from crystal_data.sources.http import HttpClient
from crystal_data.sources.landing import RawZone
from crystal_data.sources.paging import FetchReport
from crystal_data.sources.parsing import atomic_number, finite_or_none, lattice_matrix
from crystal_data.sources.politeness import DEFAULTS

log = logging.getLogger(__name__)

FIGSHARE = "https://ndownloader.figshare.com"
ENDPOINT_ENV = "JARVIS_ENDPOINT"
GIB = 1 << 30

DFT_3D_LABELS: dict[str, str] = {
    # The 19 properties CrysGNN trains on (crysgnn-method.md §7.2); units from the ALIGNN paper's table.
    "formation_energy_peratom": "eV/atom",
    "optb88vdw_bandgap": "eV",
    "optb88vdw_total_energy": "eV/atom",
    "ehull": "eV/atom",  # ALIGNN's table writes "eV"; energy above the hull is per atom
    "mbj_bandgap": "eV",
    "bulk_modulus_kv": "GPa",
    "shear_modulus_gv": "GPa",
    "slme": "%",
    "spillage": "dimensionless",
    "epsx": "dimensionless",
    "epsy": "dimensionless",
    "epsz": "dimensionless",
    "mepsx": "dimensionless",
    "mepsy": "dimensionless",
    "mepsz": "dimensionless",
    "n-powerfact": "μW/(m·K²)",
    "p-powerfact": "μW/(m·K²)",
    "n-Seebeck": "μV/K",
    "p-Seebeck": "μV/K",
}

MEGNET_LABELS: dict[str, str] = {"e_form": "eV/atom", "gap pbe": "eV"}


@dataclass(frozen=True)
class FigshareFile:
    """One JARVIS dataset as jarvis-tools' ``get_db_info`` publishes it: a figshare file holding a zip
    with one JSON member, a list of entries."""

    dataset: str
    """jarvis-tools' name (``dft_3d_2021``)."""
    file_id: int
    """figshare file id: the download is ``<endpoint>/files/<file_id>``."""
    member: str
    """The JSON file inside the zip; nothing else in the archive is read."""
    id_key: str
    """The entry key holding the id (``jid``, ``id``)."""
    entries: int
    """Entries the published file holds (a different count is logged as a warning)."""
    doi: str
    reference: str
    sha256: str | None = None
    """Pinned sha256 of the zip; ``None``: none published, trust on first download."""
    max_bytes: int = 2 * GIB
    """Refuse a zip larger than this."""
    max_member_bytes: int = 4 * GIB
    """Refuse a JSON member larger than this once decompressed (it is parsed in memory)."""
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"/files/{self.file_id}"

    @property
    def file_name(self) -> str:
        """The zip's name in the landing zone (jarvis-tools' name for it)."""
        return f"{self.member}.zip"

    @property
    def source_version(self) -> str:
        return f"{self.dataset} ({self.member})"

    def url(self, endpoint: str) -> str:
        """The download URL under ``endpoint``, a base URL (``https://ndownloader.figshare.com``, a
        mirror, a loopback server): the figshare path ``/files/<id>`` is kept."""
        return endpoint.rstrip("/") + self.path


REGISTRY: dict[str, FigshareFile] = {
    "jarvis-dft-3d-2021": FigshareFile(
        dataset="dft_3d_2021",
        file_id=29204826,
        member="jdft_3d-8-18-2021.json",
        id_key="jid",
        entries=55_723,
        doi="10.6084/m9.figshare.6815699",
        reference="Choudhary et al., npj Comput. Mater. 6, 173 (2020), doi:10.1038/s41524-020-00440-1",
        labels=DFT_3D_LABELS,
    ),
    "jarvis-megnet": FigshareFile(
        dataset="megnet",
        file_id=26724977,
        member="megnet.json",
        id_key="id",
        entries=69_239,
        doi="10.6084/m9.figshare.14177630",
        reference="Chen et al., Chem. Mater. 31, 3564 (2019), doi:10.1021/acs.chemmater.9b01294",
        labels=MEGNET_LABELS,
    ),
}
"""Source name -> the figshare file it downloads."""


def figshare_file(name: str) -> FigshareFile:
    """The registry entry for a source name (``jarvis-dft-3d-2021``) or a jarvis-tools dataset name
    (``dft_3d_2021``); ``KeyError`` listing the known ones otherwise."""
    if name in REGISTRY:
        return REGISTRY[name]
    for entry in REGISTRY.values():
        if entry.dataset == name:
            return entry
    known = ", ".join(f"{k} ({v.dataset})" for k, v in REGISTRY.items())
    raise KeyError(f"no JARVIS figshare dataset {name!r}; known: {known}")


# ------------------------------------------------------------------------------------------- fetch
def _fetch(name: str, zone: RawZone, options: FetchOptions) -> FetchReport:
    start = time.perf_counter()
    entry = REGISTRY[name]
    source = SOURCES[name]
    zone.claim({"dataset": entry.dataset, "figshare_file": entry.file_id, "member": entry.member})
    url = entry.url(source.endpoint(options))
    politeness = options.politeness or DEFAULTS["jarvis"]
    with HttpClient(politeness) as http:
        result = download_file(
            http,
            url,
            zone.file_path(entry.file_name),
            expected_sha256=entry.sha256,
            max_bytes=entry.max_bytes,
            tmp_dir=zone.tmp,
            progress=options.progress,
            check=check_zip_member(entry.member, entry.max_member_bytes),
            meta={"dataset": entry.dataset, "member": entry.member, "source_version": entry.source_version},
        )
    meta = zone.file_meta(entry.file_name) or {}
    if "entries" not in meta:  # counted once per download; a cached file keeps its count
        meta.update(_census(zone, entry))
        zone.write_file_meta(entry.file_name, meta)
    if meta["entries"] != entry.entries:
        log.warning("%s: %d entries, the published file has %d", name, meta["entries"], entry.entries)
    zone.mark_complete({"files": 1, "records": meta["entries"], "sha256": result.sha256})
    new = 0 if result.cached else 1
    return FetchReport(zone.source, 1, meta["entries"], new, True, time.perf_counter() - start)


def _census(zone: RawZone, entry: FigshareFile) -> dict:
    """Parse the member once: the entry count and the first and last ids (for the sidecar)."""
    entries = _load_entries(zone, entry)
    ids = [e.get(entry.id_key) if isinstance(e, dict) else None for e in entries]
    return {"entries": len(ids), "first_id": ids[0] if ids else None, "last_id": ids[-1] if ids else None}


def _load_entries(zone: RawZone, entry: FigshareFile) -> list:
    path = zone.file_path(entry.file_name)
    verify_cached(
        path, entry.sha256, hint=f"run `crystal-data fetch {zone.source} --raw {zone.root}` to download it"
    )
    data = json.loads(read_zip_member(path, entry.member, entry.max_member_bytes))
    if not isinstance(data, list):
        raise ValueError(f"{path}: {entry.member} holds a {type(data).__name__}, not a list of entries")
    return data


# ----------------------------------------------------------------------------------------- records
def _records(name: str, zone: RawZone) -> Iterator[CrystalRecord | RawRejection]:
    entry = REGISTRY[name]
    record_source = SOURCES[name].record_source
    entries = _load_entries(zone, entry)
    path = zone.file_path(entry.file_name).relative_to(zone.root).as_posix()
    for k in range(len(entries)):
        item, entries[k] = entries[k], None  # let each parsed entry go once it is yielded
        origin = f"{path}#{k}"
        try:
            yield _record(item, entry, record_source, origin)
        except RejectedInput as exc:
            source_id = _entry_id(item, entry.id_key) or f"<no {entry.id_key} at {origin}>"
            yield RawRejection(source_id, exc.code, exc.reason, origin)


def _entry_id(item: object, id_key: str) -> str | None:
    source_id = item.get(id_key) if isinstance(item, dict) else None
    return source_id if isinstance(source_id, str) and source_id.strip() else None


def _record(item: object, entry: FigshareFile, record_source: str, origin: str) -> CrystalRecord:
    """One JSON entry as a record; :class:`RejectedInput` naming the problem otherwise."""
    if not isinstance(item, dict):
        raise RejectedInput("malformed_entry", f"the entry is a JSON {type(item).__name__}, not an object")
    source_id = _entry_id(item, entry.id_key)
    if source_id is None:
        raise RejectedInput("missing_id", f"no {entry.id_key!r} string")
    lattice, numbers, frac = _structure(item.get("atoms"))
    return CrystalRecord(
        source=record_source,
        source_id=source_id,
        lattice=lattice,
        atomic_numbers=numbers,
        frac_coords=frac,
        source_version=entry.source_version,
        origin=origin,
        labels={key: finite_or_none(item.get(key)) for key in entry.labels},
    )


def _structure(atoms: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lattice (rows = vectors, Å), atomic numbers and fractional coordinates of a jarvis-tools
    ``Atoms.to_dict()`` (``lattice_mat``, ``elements``, ``coords``, ``cartesian``)."""
    if not isinstance(atoms, dict):
        raise RejectedInput("missing_structure", "no 'atoms' object")
    missing = [k for k in ("lattice_mat", "coords", "elements", "cartesian") if k not in atoms]
    if missing:
        raise RejectedInput("malformed_structure", f"'atoms' lacks {', '.join(missing)}")
    cartesian = atoms["cartesian"]
    elements = atoms["elements"]
    if not isinstance(cartesian, bool):
        raise RejectedInput("malformed_structure", f"'cartesian' is {cartesian!r}, not true or false")
    if not isinstance(elements, list) or not all(isinstance(e, str) for e in elements):
        raise RejectedInput("malformed_structure", "'elements' is not a list of symbols")
    try:
        lattice = lattice_matrix(atoms["lattice_mat"])
        coords = np.asarray(atoms["coords"], dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise RejectedInput("malformed_structure", str(exc)) from None
    if coords.size == 0:
        coords = coords.reshape(0, 3)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise RejectedInput("malformed_structure", f"'coords' has shape {coords.shape}, not (n, 3)")
    if len(coords) != len(elements):
        raise RejectedInput("malformed_structure", f"{len(elements)} elements but {len(coords)} coordinates")
    try:
        numbers = np.array([atomic_number(e) for e in elements], dtype=np.int64)
    except ValueError as exc:
        raise RejectedInput("unknown_element", str(exc)) from None
    if cartesian:  # cart = frac @ lattice (rows are vectors), so frac = cart @ lattice⁻¹
        try:
            coords = np.linalg.solve(lattice.T, coords.T).T
        except np.linalg.LinAlgError:
            raise RejectedInput("degenerate_lattice", "singular lattice: Cartesian coordinates") from None
    return lattice, numbers, coords


def _source(name: str, record_source: str, description: str) -> Source:
    return Source(
        name=name,
        record_source=record_source,
        label_units=dict(REGISTRY[name].labels),
        endpoint_env=ENDPOINT_ENV,
        default_endpoint=FIGSHARE,
        fetch=lambda zone, options: _fetch(name, zone, options),
        records=lambda zone: _records(name, zone),
        description=description,
    )


SOURCES: dict[str, Source] = {
    "jarvis-dft-3d-2021": _source(
        "jarvis-dft-3d-2021", "jarvis", "JARVIS-DFT 3D, 2021-08-18 release (dft_3d_2021), 55,723 entries"
    ),
    "jarvis-megnet": _source(
        "jarvis-megnet", "megnet", "Materials Project 2018.6.1 (MEGNet) via JARVIS (megnet), 69,239 entries"
    ),
}
"""The JARVIS sources by name."""
