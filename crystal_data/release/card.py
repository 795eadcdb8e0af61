"""The dataset card (``README.md``) of a release: Hugging Face YAML front matter, then Markdown.

Everything on the card is read from the release manifest (its ``release`` section and the store
sections), so the card never says something the checksummed data does not.

Hugging Face configs map whole files to splits, while our train/val/test splits are uid lists
(``splits/<target>/<scheme>.parquet``) over one set of record files. So the ``records`` config is one
split named ``records``, each stored split scheme is a config of its uid list (one split named
``assignments``), and the train/val/test sizes are in the card's table and the manifest: declaring
``train``/``validation``/``test`` splits that the data files do not have would make the Hub load the
wrong rows.
"""

from __future__ import annotations

import pyarrow as pa

from crystal_data.release.citations import citations_of, databases_of
from crystal_data.store import layout

LICENCE = "cc-by-4.0"
TAGS = ["chemistry", "materials-science", "crystal-structures", "crystal-graphs", "graph-neural-networks",
        "crysgnn", "cgcnn"]  # fmt: skip
_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
          (10_000_000, "1M<n<10M"))  # fmt: skip


def pretty_name(manifest: dict) -> str:
    """``Crystal graphs (<source> <version>, ...), release <version>``."""
    sources = manifest["release"]["sources"]
    names = ", ".join(f"{name} {entry['version']}".strip() for name, entry in sources.items())
    return f"Crystal graphs ({names}), release {manifest['release']['version']}"


def render_card(manifest: dict, records_schema: pa.Schema) -> str:
    """README.md: YAML front matter, then what the release holds, how to use it, licences, citations."""
    import yaml

    front = yaml.safe_dump(_front_matter(manifest, records_schema), sort_keys=False, allow_unicode=True)
    body = [
        _overview(manifest),
        _sources(manifest),
        _labels_and_splits(manifest),
        _settings(manifest),
        _dedup(manifest),
        _changes(manifest),
        _usage(manifest),
        _licences_and_citations(manifest),
    ]
    return f"---\n{front}---\n\n" + "\n".join(section for section in body if section)


# ------------------------------------------------------------------------------------- front matter
def _front_matter(manifest: dict, records_schema: pa.Schema) -> dict:
    release = manifest["release"]
    records = release["counts"]["records"]
    databases, _ = databases_of(release["sources"])
    tags = TAGS + [d.tag for d in databases if d.tag not in TAGS]
    configs = [
        _config("records", "records", f"{layout.RECORDS_DIR}/part-*.parquet", default=True),
        _config("rejected", "rejected", layout.REJECTED),
    ]
    info = [_info("records", "records", records, _features(records_schema))]
    info.append(_info("rejected", "rejected", release["counts"]["rejected"]))
    for name, section, count_key in ((layout.DUPLICATES, "duplicates", "duplicates"),
                                     (layout.LEAKAGE, "leakage", "leaked")):  # fmt: skip
        if name in manifest["files"]:
            configs.append(_config(section, section, name))
            info.append(_info(section, section, release["counts"][count_key]))
    for key, split in release["splits"].items():
        config_name = "split-" + key.replace("/", "-").replace(" ", "_")
        configs.append(_config(config_name, "assignments", split["file"]))
        info.append(_info(config_name, "assignments", sum(split["sizes"].values())))
    return {
        "license": LICENCE,
        "pretty_name": pretty_name(manifest),
        "tags": tags,
        "task_categories": ["graph-ml"],
        "size_categories": [next((name for limit, name in _SIZES if records < limit), "n>10M")],
        "configs": configs,
        "dataset_info": info,
    }


def _config(name: str, split: str, path: str, default: bool = False) -> dict:
    config: dict = {"config_name": name}
    if default:
        config["default"] = True
    config["data_files"] = [{"split": split, "path": path}]
    return config


def _info(config: str, split: str, examples: int, features: list | None = None) -> dict:
    info: dict = {"config_name": config}
    if features is not None:
        info["features"] = features
    info["splits"] = [{"name": split, "num_examples": int(examples)}]
    return info


def _features(schema: pa.Schema) -> list[dict]:
    """Hugging Face ``features`` of the records' Arrow schema."""
    return [{"name": field.name, **_feature_type(field.type)} for field in schema]


def _feature_type(kind: pa.DataType) -> dict:
    if pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind):
        inner = _feature_type(kind.value_type)
        return {"sequence": inner.get("dtype", inner)}
    names = {pa.string(): "string", pa.float64(): "float64", pa.float32(): "float32", pa.int64(): "int64",
             pa.int32(): "int32", pa.int16(): "int16", pa.uint8(): "uint8", pa.bool_(): "bool"}  # fmt: skip
    return {"dtype": names.get(kind, str(kind))}


# -------------------------------------------------------------------------------------------- body
def _overview(manifest: dict) -> str:
    release, counts = manifest["release"], manifest["release"]["counts"]
    canonical = f", {counts['canonical']:,} distinct after deduplication" if "canonical" in counts else ""
    return "\n".join(
        [
            f"# {pretty_name(manifest)}",
            "",
            f"{counts['records']:,} crystal structures{canonical}, each with its CrysGNN/CGCNN multigraph "
            f"({counts['nodes']:,} atoms, {counts['edges']:,} directed edges in all), written by "
            f"crysgnn-toolkit {release['toolkit']} on {release['created_at']}. "
            + _rejected(counts["rejected"]),
            "",
            "Every file is listed in `manifest.json` with its sha256 and size; `crystal-data verify "
            "RELEASE` checks them all. The release is immutable: a later release gets a new version.",
            "",
        ]
    )


def _rejected(count: int) -> str:
    if count == 0:
        return "Every input became a record (`rejected.parquet` is empty)."
    return f"{count:,} inputs that did not become records are listed with the reason in `rejected.parquet`."


def _sources(manifest: dict) -> str:
    rows = ["## Sources", "", "| source | database version | records | rejected | duplicates | distinct |",
            "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for name, entry in manifest["release"]["sources"].items():
        rows.append(
            f"| `{name}` | {entry['version'] or 'unknown'} | {entry['records']:,} | {entry['rejected']:,} "
            f"| {entry['duplicates']:,} | {entry['records'] - entry['duplicates']:,} |"
        )
    return "\n".join(rows) + "\n"


def _labels_and_splits(manifest: dict) -> str:
    release = manifest["release"]
    if not release["labels"]:
        lines = ["## Labels", "", "None: the records are unlabelled (a pretraining corpus).", ""]
    else:
        lines = ["## Labels", "", "| label | unit | records with a value |", "|---|---|---:|"]
        lines += [f"| `{n}` | {e['unit'] or '-'} | {e['records']:,} |" for n, e in release["labels"].items()]
        lines.append("")
    if release["labels"] and not release["splits"]:
        lines += [
            "## Splits",
            "",
            "None stored. `crystal_data.load(RELEASE, split=..., target=...)` draws the ALIGNN recipe "
            "(80/10/10, seed 123) over the records with the target, in memory, identically on every load.",
            "",
        ]
    if release["splits"]:
        lines += [
            "## Splits",
            "",
            "Stored as uid lists (`uid`, `split`, `entry`, `position`) and read back exactly by "
            "`crystal_data.load(..., split=..., target=..., scheme=...)`.",
            "",
            "| target | scheme | file | train | val | test |",
            "|---|---|---|---:|---:|---:|",
        ]
        for split in release["splits"].values():
            sizes = split["sizes"]
            lines.append(
                f"| `{split['target']}` | {split['scheme']} | `{split['file']}` | {sizes['train']:,} "
                f"| {sizes['val']:,} | {sizes['test']:,} |"
            )
        lines.append("")
    return "\n".join(lines)


def _settings(manifest: dict) -> str:
    graph, symmetry = manifest["release"]["graphs"], manifest["release"]["symmetry"]
    config = graph["config"]
    return "\n".join(
        [
            "## How the graphs and symmetry were computed",
            "",
            f"- Graphs `{graph['default']}` (folder `graphs/{graph['default']}/`): the "
            f"{config.get('max_neighbors')} nearest neighbours of every atom within "
            f"{config.get('cutoff')} Å, each periodic image a separate directed edge; ties within "
            f"{config.get('tie_tolerance')} Å "
            f"broken by a fixed order; crystals with atoms closer than {config.get('min_distance')} Å "
            "rejected. Node features: the 92-dimensional CGCNN table, looked up from the atomic number.",
            f"- Symmetry: spglib {symmetry.get('spglib_version')}, symprec {symmetry.get('symprec')} Å, "
            f"angle tolerance {symmetry.get('angle_tolerance')}°.",
            "",
        ]
    )


def _dedup(manifest: dict) -> str:
    dedup = manifest["release"]["dedup"]
    if dedup is None:
        return "## Deduplication\n\nNot run on this release: records may repeat a crystal.\n"
    counts, config = dedup["counts"], dedup["config"]
    methods = ", ".join(f"{k} {v:,}" for k, v in counts.get("by_method", {}).items()) or "none"
    return "\n".join(
        [
            "## Deduplication",
            "",
            f"{counts['duplicates']:,} of {counts['records']:,} records duplicate another crystal "
            f"(by method: {methods}); {counts['canonical']:,} are canonical (`duplicates.parquet`; "
            "`store.records` gets a `canonical` column). Candidates share reduced formula and space group; "
            f"StructureMatcher ltol {config.get('ltol')}, stol {config.get('stol')}, angle_tol "
            f"{config.get('angle_tol')}; priority {', '.join(config.get('priority', []))}. "
            f"{counts.get('fit_calls', 0):,} StructureMatcher fits instead of "
            f"{counts.get('all_pairs_within_formula', 0):,} all-pairs comparisons within formulas.",
            "",
        ]
    )


def _changes(manifest: dict) -> str:
    release = manifest["release"]
    changes, previous = release["changes"], release["previous"]
    if previous is None:
        return "## Changes\n\nFirst release (see `CHANGELOG.md`).\n"
    against = f"release {previous['version']}" if previous["version"] else f"store {previous['location']}"
    return (
        f"## Changes\n\nAgainst {against}: {changes['added']:,} added, {changes['removed']:,} removed, "
        f"{changes['changed']:,} changed, {changes['unchanged']:,} unchanged (`CHANGELOG.md`, "
        "`changes.parquet`).\n"
    )


def _usage(manifest: dict) -> str:
    version = manifest["release"]["version"]
    return "\n".join(
        [
            "## Use",
            "",
            "```python",
            "import crystal_data   # pip install crysgnn-toolkit",
            "",
            f'store = crystal_data.open("https://HOST/PATH/{version}/")   # or a local folder',
            "store.records          # Polars DataFrame: uid, source, formula, lattice, space group, labels",
            "g = store[0]           # numpy: atomic_numbers, edge_index (2, E), edge_distance, edge_image",
            "```",
            "",
            "Opening by URL downloads every file once into the crystal-data cache, checks each against "
            "its sha256 here, and later opens work offline. Layout and schema: `docs/store.md` and "
            "`docs/releases.md` of crysgnn-toolkit.",
            "",
        ]
    )


def _licences_and_citations(manifest: dict) -> str:
    databases, unknown = databases_of(manifest["release"]["sources"])
    lines = ["## Licence", ""]
    lines += [f"- {d.name}: {d.licence}." for d in databases]
    lines += [
        f"- source `{name}`: the licence of its input files (not known to this card)." for name in unknown
    ]
    lines += [
        "",
        "The release as a whole is distributed under CC-BY-4.0: keep the attributions below.",
        "",
        "## Citations",
        "",
        "Cite the databases the records come from, the CrysGNN paper (the corpus recipe) and CGCNN "
        "(the graph featurization):",
        "",
    ]
    cited = citations_of(databases)
    lines += [f"- {c.text}" for c in cited]
    lines += ["", "```bibtex", *("\n\n".join(c.bibtex for c in cited)).splitlines(), "```", ""]
    return "\n".join(lines)
