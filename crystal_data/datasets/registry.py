"""The named datasets ``crystal_data.load`` knows: what each is, where it comes from, its licence,
citation, size, targets with units, and the split its paper used (docs/datasets.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from crystal_data.sources.jarvis import DFT_3D_LABELS, MEGNET_LABELS, REGISTRY
from crystal_data.splits import ALIGNN_80_10_10, ALIGNN_MP2018, SplitScheme

FIGSHARE = "figshare"
"""Downloaded through a JARVIS figshare source, then normalised into a store."""
PLACED_FOLDER = "placed-folder"
"""A CGCNN-layout folder (``id_prop.csv`` + CIFs) the user places; no download exists."""
CORPUS = "corpus"
"""A store built elsewhere (the build flow), found by path."""


@dataclass(frozen=True)
class DatasetInfo:
    """One named dataset."""

    name: str
    title: str
    kind: str
    origin: str
    licence: str
    citation: str
    size: int | None
    """Entries of the published file (``None``: depends on what is placed or built)."""
    targets: dict[str, str] = field(default_factory=dict)
    """Label -> unit, with the upstream label names."""
    paper_split: SplitScheme = ALIGNN_80_10_10
    """What ``scheme="alignn"`` (the default) draws."""
    source: str | None = None
    """The :mod:`crystal_data.sources` name it is fetched through (figshare datasets)."""
    notes: str = ""


def _figshare_origin(source: str) -> str:
    entry = REGISTRY[source]
    return (
        f"JARVIS figshare file {entry.file_id} ({entry.file_name}, member {entry.member}; item "
        f"doi:{entry.doi}), jarvis-tools name {entry.dataset!r}"
    )


UNTAGGED_800K_ENV = "CRYSTAL_DATA_UNTAGGED_800K"

DATASETS: dict[str, DatasetInfo] = {
    "jarvis": DatasetInfo(
        name="jarvis",
        title="JARVIS-DFT 3D, release 2021.8.18 (the CrysGNN/ALIGNN/Matformer benchmark)",
        kind=FIGSHARE,
        origin=_figshare_origin("jarvis-dft-3d-2021"),
        licence=(
            "Work of the US Government (NIST): not subject to copyright in the United States "
            "(17 U.S.C. §105), may be subject to foreign copyright; the figshare item's licence was not "
            "verified here"
        ),
        citation=(
            "K. Choudhary et al., npj Comput. Mater. 6, 173 (2020), doi:10.1038/s41524-020-00440-1; "
            "and the figshare item doi:10.6084/m9.figshare.6815699"
        ),
        size=55_723,
        targets=dict(DFT_3D_LABELS),
        paper_split=ALIGNN_80_10_10,
        source="jarvis-dft-3d-2021",
    ),
    "mp2018": DatasetInfo(
        name="mp2018",
        title="Materials Project 2018.6.1, the MEGNet snapshot (ALIGNN's and CrysGNN's MP benchmark)",
        kind=FIGSHARE,
        origin=_figshare_origin("jarvis-megnet"),
        licence="Materials Project data: CC-BY-4.0",
        citation=(
            "A. Jain et al., APL Materials 1, 011002 (2013); C. Chen et al., Chem. Mater. 31, 3564 (2019), "
            "doi:10.1021/acs.chemmater.9b01294; and the JARVIS figshare item doi:10.6084/m9.figshare.14177630"
        ),
        size=69_239,
        targets=dict(MEGNET_LABELS),
        paper_split=ALIGNN_MP2018,
        source="jarvis-megnet",
    ),
    "oqmd-exp": DatasetInfo(
        name="oqmd-exp",
        title="Experimental formation enthalpies matched to crystal structures (a stand-in for OQMD-EXP)",
        kind=PLACED_FOLDER,
        origin=(
            "a CGCNN-layout folder placed at data_home()/raw/oqmd-exp/: id_prop.csv (no header; "
            "id,enthalpy in eV/atom) and one <id>.cif per id. Recommended public source: the experimental "
            "formation enthalpies of Kim et al. 2017 (1,276 compounds; matminer 'expt_formation_enthalpy', "
            "each row with an OQMD id) with the OQMD structure of that id. Not the paper's own file"
        ),
        licence=(
            "that of the files placed: OQMD structures are CC-BY-4.0; check the licence of the "
            "experimental compilation you use (not verified here)"
        ),
        citation=(
            "G. Kim, S. V. Meschel, P. Nash, W. Chen, Sci. Data 4, 170162 (2017), "
            "doi:10.1038/sdata.2017.162; "
            "S. Kirklin et al., npj Comput. Mater. 1, 15010 (2015), doi:10.1038/npjcompumats.2015.10"
        ),
        size=None,
        targets={"e_form_expt": "eV/atom"},
        paper_split=ALIGNN_80_10_10,
        notes=(
            "The CrysGNN paper's OQMD-EXP (about 1,500 experimental formation energies from the OQMD) is "
            "not published as a file; its exact membership and protocol are unverified "
            "(crysgnn-method.md §7.3)."
        ),
    ),
    "untagged-800k": DatasetInfo(
        name="untagged-800k",
        title="The CrysGNN pretraining corpus (about 800K unlabelled crystals, OQMD and Materials Project)",
        kind=CORPUS,
        origin=(
            f"a store built by this toolkit (the build-800k flow, or `crystal-data build --layout "
            f"untagged-800k` over github.com/kdmsit/crystal_untagged_800K), found at ${UNTAGGED_800K_ENV} "
            "or data_home()/stores/untagged-800k"
        ),
        licence="OQMD and Materials Project data: CC-BY-4.0",
        citation=(
            "K. Das et al., CrysGNN, AAAI 2023; A. Jain et al., APL Materials 1, 011002 (2013); "
            "S. Kirklin et al., npj Comput. Mater. 1, 15010 (2015)"
        ),
        size=None,
        notes="Unlabelled: pretraining uses every crystal (split='all'); the paper has no split for it.",
    ),
}
"""Dataset name -> what it is."""


def get_dataset(name: str) -> DatasetInfo:
    """The registry entry for ``name``; ``KeyError`` listing the known names otherwise."""
    if name not in DATASETS:
        raise KeyError(f"no dataset named {name!r}; known: {', '.join(DATASETS)}, or a store path")
    return DATASETS[name]
