"""Source clients: fetch rate against loopback servers at the default politeness, and normalisation
speed (raw page to canonical record) against the obvious pymatgen way, side by side in one run.

The same ``--n`` real Materials Project crystals (every k-th of the shared 33K set) are served in
each upstream's format by the loopback servers the tests use (MP summary envelope through mp-api,
OQMD REST envelope with 3-decimal site strings, OPTIMADE v1, a JARVIS figshare zip):

1. **Fetch**: ``Source.fetch`` into a fresh landing zone with the source's *default* politeness
   (rate limit, concurrency, page size), so the rate limit is what binds, as it should against the
   real hosts. Requests and wall time (mp-api is imported before the clock starts).
2. **Parse**: ``Source.records(zone)`` over the stored pages (gunzip, sha256 check, JSON, canonical
   records) against a baseline that parses the same stored pages into pymatgen ``Structure`` objects
   (``Structure.from_dict`` for MP; ``Structure(lattice, species, coords)`` for the others), the way
   scripts around ``MPRester``/``qmpy-rester``/jarvis-tools do.
3. **Normalise**: ``crystal-data normalize`` as a function (staging + graphs + symmetry + shards, 2
   workers) into a store, which ``verify`` must accept.

    .venv/bin/python benchmarks/bench_sources.py --data /tmp/mp/mp-formation-energy --n 3000

``--data`` takes the tarball or an extracted folder (see benchmarks/common.py).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from common import cpu_model, md_table, publish, resolve_data, usable_cores

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the loopback servers of the tests

from crystal_data.normalize import normalize  # noqa: E402
from crystal_data.readers.cif import parse_cif  # noqa: E402
from crystal_data.readers.cif_folder import scan_cif_folder  # noqa: E402
from crystal_data.sources import get_source  # noqa: E402
from crystal_data.sources.base import FetchOptions  # noqa: E402
from crystal_data.sources.landing import RawZone  # noqa: E402
from crystal_data.sources.politeness import defaults_for  # noqa: E402
from crystal_data.store import verify_store  # noqa: E402
from tests import fake_mp, fake_oqmd, test_source_jarvis  # noqa: E402
from tests.upstream import Reply, Request, Upstream  # noqa: E402


class Crystal:
    def __init__(self, source_id: str, lattice: np.ndarray, numbers: np.ndarray, frac: np.ndarray):
        self.source_id, self.lattice, self.numbers, self.frac = source_id, lattice, numbers, frac

    @property
    def symbols(self) -> list[str]:
        from pymatgen.core import Element

        return [Element.from_Z(int(z)).symbol for z in self.numbers]


def load_crystals(folder: Path, n: int) -> list[Crystal]:
    inputs = scan_cif_folder(folder, "auto", ["formation_energy_per_atom"]).inputs
    step = max(1, len(inputs) // n)
    crystals = []
    for item in inputs[::step][:n]:
        parsed = parse_cif(Path(item.path).read_bytes())
        crystals.append(Crystal(item.source_id, parsed.lattice, parsed.atomic_numbers, parsed.frac_coords))
    return crystals


# ------------------------------------------------------------------------------------- upstreams
def mp_server(crystals: Sequence[Crystal]) -> Upstream:
    from pymatgen.core import Lattice, Structure

    docs = [
        fake_mp.summary_doc(c.source_id, Structure(Lattice(c.lattice), c.symbols, c.frac)) for c in crystals
    ]
    return fake_mp.serve(docs)


def oqmd_entries(crystals: Sequence[Crystal]) -> list[dict]:
    return [
        fake_oqmd.full_entry(
            100000 + k, "X", "X", "P1", c.lattice.tolist(), list(zip(c.symbols, c.frac.tolist())), k
        )
        for k, c in enumerate(crystals)
    ]


def oqmd_server(crystals: Sequence[Crystal]) -> Upstream:
    entries = oqmd_entries(crystals)
    structures = [fake_oqmd.optimade_resource(e) for e in entries]
    return Upstream(fake_oqmd.FakeOqmd(entries, structures).routes())


def jarvis_server(crystals: Sequence[Crystal]) -> Upstream:
    entries = [
        test_source_jarvis.dft_entry(
            f"JVASP-{k}",
            test_source_jarvis.atoms(c.lattice.tolist(), c.frac.tolist(), c.symbols),
            formation_energy_peratom=-1.0,
        )
        for k, c in enumerate(crystals)
    ]
    body = test_source_jarvis.make_zip("jdft_3d-8-18-2021.json", entries)

    def route(request: Request) -> Reply:
        return Reply(200, body, {"Content-Type": "application/zip"})

    return Upstream({"/files/29204826": route})


SERVERS: dict[str, Callable[[Sequence[Crystal]], Upstream]] = {
    "mp": mp_server,
    "oqmd": oqmd_server,
    "oqmd-optimade": oqmd_server,
    "jarvis-dft-3d-2021": jarvis_server,
}


# -------------------------------------------------------------------------------------- baselines
def baseline_structures(name: str, zone: RawZone) -> int:
    """Stored pages -> pymatgen Structures, the way a script around the usual client would."""
    from pymatgen.core import Lattice, Structure

    count = 0
    if name == "jarvis-dft-3d-2021":
        import zipfile

        path = zone.file_path("jdft_3d-8-18-2021.json.zip")
        hashlib.sha256(path.read_bytes()).hexdigest()
        with zipfile.ZipFile(path) as archive:
            entries = json.loads(archive.read("jdft_3d-8-18-2021.json"))
        for e in entries:
            a = e["atoms"]
            Structure(a["lattice_mat"], a["elements"], a["coords"], coords_are_cartesian=a["cartesian"])
            count += 1
        return count
    for page in zone.pages():
        body = gzip.decompress(page.body_path.read_bytes())
        hashlib.sha256(body).hexdigest()
        data = json.loads(body)["data"]
        for doc in data:
            if name == "mp":
                Structure.from_dict(doc["structure"])
            elif name == "oqmd":
                sites = [s.split("@") for s in doc["sites"]]
                coords = [[float(x) for x in xyz.split()] for _, xyz in sites]
                Structure(Lattice(doc["unit_cell"]), [el.strip() for el, _ in sites], coords)
            else:
                attrs = doc["attributes"]
                Structure(
                    Lattice(attrs["lattice_vectors"]),
                    attrs["species_at_sites"],
                    attrs["cartesian_site_positions"],
                    coords_are_cartesian=True,
                )
            count += 1
    return count


# ---------------------------------------------------------------------------------------- measure
def measure(name: str, crystals: Sequence[Crystal], work: Path) -> dict:
    source = get_source(name)
    raw = work / "raw"
    if name == "mp":
        import mp_api.client  # noqa: F401 - its ~5 s import is not fetch time
    with SERVERS[name](crystals) as server:
        options = FetchOptions(
            endpoint=server.url,
            politeness=None,
            progress=False,
            extra={"api_key": fake_mp.API_KEY} if name == "mp" else {},
        )
        start = time.perf_counter()
        report = source.fetch(RawZone(raw, name), options)
        fetch_s = time.perf_counter() - start
        requests = len([r for r in server.requests if r.path != "/heartbeat"])
    zone = RawZone(raw, name)
    start = time.perf_counter()
    items = list(source.records(zone))
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    base_count = baseline_structures(name, zone)
    base_s = time.perf_counter() - start
    records = sum(1 for item in items if hasattr(item, "lattice"))
    start = time.perf_counter()
    built = normalize(raw, work / f"store-{name}", sources=[name], workers=2, progress=False)
    normalize_s = time.perf_counter() - start
    problems = verify_store(work / f"store-{name}")
    return {
        "name": name,
        "politeness": defaults_for(name),
        "fetched": report.records,
        "pages": report.pages,
        "requests": requests,
        "fetch_s": fetch_s,
        "records": records,
        "rejected": len(items) - records,
        "ours_s": ours_s,
        "base_count": base_count,
        "base_s": base_s,
        "normalize_s": normalize_s,
        "store_records": built.records,
        "verify": "OK" if not problems else "; ".join(problems),
    }


def report(rows: list[dict], n: int, command: str) -> str:
    fetch_rows = [
        [
            r["name"],
            f"{r['politeness'].requests_per_second:g} req/s, {r['politeness'].concurrency} in flight",
            f"{r['fetched']:,}",
            r["pages"],
            r["requests"],
            f"{r['fetch_s']:.1f}",
            f"{r['fetched'] / r['fetch_s']:,.0f}",
            f"{r['requests'] / r['fetch_s']:.2f}",
        ]
        for r in rows
    ]
    parse_rows = [
        [
            r["name"],
            f"{r['records']:,} (+{r['rejected']} rejected)",
            f"{r['records'] / r['ours_s']:,.0f}",
            f"{r['base_count'] / r['base_s']:,.0f}",
            f"**{(r['records'] / r['ours_s']) / (r['base_count'] / r['base_s']):.1f}x**",
            f"{r['store_records'] / r['normalize_s']:,.0f}",
            r["verify"],
        ]
        for r in rows
    ]
    return "\n\n".join(
        [
            f"Command: `{command}`; {n:,} real crystals of the shared MP set; {cpu_model()}, "
            f"{usable_cores()} cores.",
            md_table(
                [
                    "source",
                    "default politeness",
                    "records",
                    "pages",
                    "requests",
                    "s",
                    "records/s",
                    "requests/s",
                ],
                fetch_rows,
            ),
            md_table(
                [
                    "source",
                    "records parsed",
                    "ours: raw page → record /s",
                    "baseline: raw page → pymatgen Structure /s",
                    "ratio",
                    "normalize (stage + graphs + symmetry, 2 workers) /s",
                    "verify",
                ],
                parse_rows,
            ),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "crystal-bench-data")
    parser.add_argument("--sources", default=",".join(SERVERS))
    parser.add_argument("--out-md", type=Path)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.ERROR)
    os.environ.pop("MP_API_KEY", None)
    crystals = load_crystals(resolve_data(args.data, args.cache), args.n)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-sources-") as tmp:
        for name in args.sources.split(","):
            print(f"{name} ...", file=sys.stderr)
            rows.append(measure(name, crystals, Path(tmp) / name))
    command = "python benchmarks/bench_sources.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(rows, len(crystals), command)
    return publish(text, args.out_md)


if __name__ == "__main__":
    raise SystemExit(main())
