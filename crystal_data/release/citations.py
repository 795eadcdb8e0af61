"""What a release cites, and under which licence its records are, by record source."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Citation:
    key: str
    text: str
    bibtex: str


MATERIALS_PROJECT = Citation(
    "jain2013",
    'A. Jain et al., "Commentary: The Materials Project: A materials genome approach to accelerating '
    'materials innovation", APL Materials 1, 011002 (2013), doi:10.1063/1.4812323',
    "@article{jain2013,\n  author = {Jain, Anubhav and others},\n  title = {Commentary: The Materials "
    "Project: A materials genome approach to accelerating materials innovation},\n  journal = {APL "
    "Materials},\n  volume = {1},\n  pages = {011002},\n  year = {2013},\n  doi = {10.1063/1.4812323}\n}",
)
OQMD_2013 = Citation(
    "saal2013",
    'J. E. Saal, S. Kirklin, M. Aykol, B. Meredig, C. Wolverton, "Materials Design and Discovery with '
    'High-Throughput Density Functional Theory: The Open Quantum Materials Database (OQMD)", JOM 65, '
    "1501 (2013), doi:10.1007/s11837-013-0755-4",
    "@article{saal2013,\n  author = {Saal, James E. and Kirklin, Scott and Aykol, Muratahan and Meredig, "
    "Bryce and Wolverton, Chris},\n  title = {Materials Design and Discovery with High-Throughput Density "
    "Functional Theory: The Open Quantum Materials Database ({OQMD})},\n  journal = {JOM},\n  volume = "
    "{65},\n  pages = {1501},\n  year = {2013},\n  doi = {10.1007/s11837-013-0755-4}\n}",
)
OQMD_2015 = Citation(
    "kirklin2015",
    'S. Kirklin et al., "The Open Quantum Materials Database (OQMD): assessing the accuracy of DFT '
    'formation energies", npj Comput. Mater. 1, 15010 (2015), doi:10.1038/npjcompumats.2015.10',
    "@article{kirklin2015,\n  author = {Kirklin, Scott and others},\n  title = {The Open Quantum Materials "
    "Database ({OQMD}): assessing the accuracy of {DFT} formation energies},\n  journal = {npj "
    "Computational Materials},\n  volume = {1},\n  pages = {15010},\n  year = {2015},\n  doi = "
    "{10.1038/npjcompumats.2015.10}\n}",
)
JARVIS = Citation(
    "choudhary2020",
    'K. Choudhary et al., "The joint automated repository for various integrated simulations (JARVIS) '
    'for data-driven materials design", npj Comput. Mater. 6, 173 (2020), doi:10.1038/s41524-020-00440-1',
    "@article{choudhary2020,\n  author = {Choudhary, Kamal and others},\n  title = {The joint automated "
    "repository for various integrated simulations ({JARVIS}) for data-driven materials design},\n  "
    "journal = {npj Computational Materials},\n  volume = {6},\n  pages = {173},\n  year = {2020},\n  "
    "doi = {10.1038/s41524-020-00440-1}\n}",
)
MEGNET = Citation(
    "chen2019",
    'C. Chen, W. Ye, Y. Zuo, C. Zheng, S. P. Ong, "Graph Networks as a Universal Machine Learning '
    'Framework for Molecules and Crystals", Chem. Mater. 31, 3564 (2019), doi:10.1021/acs.chemmater.9b01294',
    "@article{chen2019,\n  author = {Chen, Chi and Ye, Weike and Zuo, Yunxing and Zheng, Chen and Ong, "
    "Shyue Ping},\n  title = {Graph Networks as a Universal Machine Learning Framework for Molecules and "
    "Crystals},\n  journal = {Chemistry of Materials},\n  volume = {31},\n  pages = {3564},\n  year = "
    "{2019},\n  doi = {10.1021/acs.chemmater.9b01294}\n}",
)
CRYSGNN = Citation(
    "das2023",
    'K. Das, B. Samanta, P. Goyal, S.-C. Lee, S. Bhattacharjee, N. Ganguly, "CrysGNN: Distilling '
    'Pre-trained Knowledge to Enhance Property Prediction for Crystalline Materials", Proceedings of the '
    "AAAI Conference on Artificial Intelligence 37 (2023), doi:10.1609/aaai.v37i6.25892",
    "@inproceedings{das2023,\n  author = {Das, Kishalay and Samanta, Bidisha and Goyal, Pawan and Lee, "
    "Seung-Cheol and Bhattacharjee, Satadeep and Ganguly, Niloy},\n  title = {{CrysGNN}: Distilling "
    "Pre-trained Knowledge to Enhance Property Prediction for Crystalline Materials},\n  booktitle = "
    "{Proceedings of the AAAI Conference on Artificial Intelligence},\n  volume = {37},\n  year = {2023},"
    "\n  doi = {10.1609/aaai.v37i6.25892}\n}",
)
CGCNN = Citation(
    "xie2018",
    'T. Xie, J. C. Grossman, "Crystal Graph Convolutional Neural Networks for an Accurate and '
    'Interpretable Prediction of Material Properties", Phys. Rev. Lett. 120, 145301 (2018), '
    "doi:10.1103/PhysRevLett.120.145301",
    "@article{xie2018,\n  author = {Xie, Tian and Grossman, Jeffrey C.},\n  title = {Crystal Graph "
    "Convolutional Neural Networks for an Accurate and Interpretable Prediction of Material Properties},"
    "\n  journal = {Physical Review Letters},\n  volume = {120},\n  pages = {145301},\n  year = {2018},\n"
    "  doi = {10.1103/PhysRevLett.120.145301}\n}",
)


@dataclass(frozen=True)
class Database:
    name: str
    tag: str
    licence: str
    citations: tuple[Citation, ...]


MP_DB = Database("Materials Project", "materials-project", "CC-BY-4.0", (MATERIALS_PROJECT,))
OQMD_DB = Database("OQMD", "oqmd", "CC-BY-4.0", (OQMD_2013, OQMD_2015))
JARVIS_DB = Database(
    "JARVIS-DFT",
    "jarvis",
    "work of the US Government (NIST): not subject to copyright in the United States (17 U.S.C. §105)",
    (JARVIS,),
)
MEGNET_DB = Database("Materials Project 2018.6.1 (MEGNet snapshot)", "materials-project", "CC-BY-4.0",
                     (MATERIALS_PROJECT, MEGNET))  # fmt: skip

DATABASES: dict[str, tuple[Database, ...]] = {
    "mp": (MP_DB,),
    "oqmd": (OQMD_DB,),
    "jarvis": (JARVIS_DB,),
    "megnet": (MEGNET_DB,),
    # CrysGNN's untagged 800K corpus: OQMD and Materials Project crystals.
    "crysgnn800k": (OQMD_DB, MP_DB),
}
"""Record source (the ``source`` column) -> the databases its records come from."""

ALWAYS = (CRYSGNN, CGCNN)
"""Cited by every release: the corpus recipe (CrysGNN) and the graph featurization (CGCNN)."""


def databases_of(sources: Iterable[str]) -> tuple[list[Database], list[str]]:
    """(the databases behind ``sources``, without repeats; the sources of unknown origin)."""
    found: list[Database] = []
    unknown = []
    for source in sorted(sources):
        databases = DATABASES.get(source)
        if databases is None:
            unknown.append(source)
        for database in databases or ():
            if database not in found:
                found.append(database)
    return found, unknown


def citations_of(databases: Iterable[Database]) -> list[Citation]:
    """The databases' citations, then :data:`ALWAYS`, without repeats."""
    cited: list[Citation] = []
    for citation in [c for d in databases for c in d.citations] + list(ALWAYS):
        if citation not in cited:
            cited.append(citation)
    return cited
