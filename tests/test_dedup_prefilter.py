"""The pre-filter skips only fits that cannot succeed; tier 2 merges only near-identical cells."""

import warnings

import numpy as np
import pytest

from crystal_data.convert import to_structure
from crystal_data.dedup import DedupConfig
from crystal_data.dedup.fingerprint import cell_distance, lattice_symmetries, standard_cell
from crystal_data.dedup.grouping import make_matcher
from crystal_data.dedup.perturbations import PERTURBATIONS
from crystal_data.dedup.prefilter import reduced_cell, rejection, successive_minima
from crystal_data.readers.cif import parse_cif
from crystal_data.record import CrystalRecord
from crystal_data.sample import sample_dir

CONFIG = DedupConfig()


def crystal(path):
    parsed = parse_cif(path.read_bytes())
    return parsed.lattice, parsed.atomic_numbers, parsed.frac_coords


def structure(lattice, numbers, frac):
    return to_structure(CrystalRecord("x", "x", lattice, numbers, frac))


def verdicts(first, second):
    """(pre-filter's reason or None, fit) for ``fit(first, second)``, on structures."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reason = rejection(reduced_cell(first), reduced_cell(second), CONFIG.ltol, CONFIG.angle_tol)
        return reason, bool(make_matcher(CONFIG).fit(first, second))


def tier2(first, second):
    cells = [standard_cell(lattice, frac, numbers, CONFIG.symprec, CONFIG.angle_tolerance)
             for lattice, numbers, frac in (first, second)]  # fmt: skip
    return cell_distance(*cells, CONFIG.cell_ltol, CONFIG.cell_stol, CONFIG.cell_angle_tol)


def test_successive_minima():
    skewed_cubic = np.array([[1.0, 0, 0], [1, 1, 0], [1, 1, 1]])  # a basis of the unit cubic lattice
    assert successive_minima(skewed_cubic) == pytest.approx([1, 1, 1])
    fcc = 2.0 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    assert successive_minima(fcc) == pytest.approx([2 * 2**0.5] * 3)
    tetragonal = np.array([[1.0, 0, 0], [0, 1, 0], [1, 1, 3]])  # c' = a + b + c: λ3 is still 3
    assert successive_minima(tetragonal) == pytest.approx([1, 1, 3])


def test_lattice_symmetries_are_the_holohedry():
    """Tier 2 tries the member in every basis related by a point symmetry of the lattice: 48 for a
    cubic lattice (also in its face-centred primitive basis), 24 hexagonal, 8 orthorhombic, 2 triclinic;
    the identity first."""
    hexagonal = np.array([[3.0, 0, 0], [-1.5, 1.5 * 3**0.5, 0], [0, 0, 5]])
    lattices = [4 * np.eye(3), 2.0 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]), hexagonal,
                np.diag([3.0, 4, 5]), np.array([[3.0, 0, 0], [0.4, 4, 0], [0.7, 0.9, 5]])]  # fmt: skip
    counts = [len(lattice_symmetries(m, CONFIG.cell_ltol, CONFIG.cell_angle_tol)) for m in lattices]
    assert counts == [48, 48, 24, 8, 2]
    assert np.array_equal(
        lattice_symmetries(hexagonal, CONFIG.cell_ltol, CONFIG.cell_angle_tol)[0], np.eye(3)
    )


def test_lattice_bound_is_the_matchers_own():
    """A monoclinic crystal stretched along z against itself: its c axis passes the matcher's length
    tolerance (1 + ltol at equal volume) at a stretch of 1.2^1.5 = 1.3145; the pre-filter rejects
    exactly the stretches the fit rejects, on both sides of that bound."""
    lattice, numbers, frac = crystal(sample_dir() / "mp-2858.cif")
    original = structure(lattice, numbers, frac)
    results = {k: verdicts(original, structure(lattice @ np.diag([1, 1, k]), numbers, frac))
               for k in (1.25, 1.30, 1.31, 1.313, 1.316, 1.32, 1.35, 1.5)}  # fmt: skip
    assert all((reason is None) == fit for reason, fit in results.values()), results
    assert [k for k, (reason, _) in results.items() if reason == "lattice"] == [1.316, 1.32, 1.35, 1.5]


def test_rewrites_pass_and_zinc_blende_wurtzite_is_skipped():
    rng = np.random.default_rng(3)
    for name in ("mp-22862", "mp-560588", "mp-390", "mp-2858", "mp-1143"):
        original = crystal(sample_dir() / f"{name}.cif")
        for kind, rewrite in PERTURBATIONS.items():
            assert verdicts(structure(*original), structure(*rewrite(original, rng))) == (None, True), (
                name,
                kind,
            )
    zinc_blende, wurtzite = (
        structure(*crystal(sample_dir() / f"{n}.cif")) for n in ("mp-10695", "mp-560588")
    )
    assert verdicts(zinc_blende, wurtzite) == ("sites", False)  # 2 against 4 sites in the primitive cells


def test_known_polymorphs_are_skipped(shared_polymorphs):
    """Real SiO2 pairs of one space group that the Materials Project keeps apart: the pre-filter must
    skip them (and the fit agrees); the one real duplicate of the set must reach the fit, not tier 2."""

    def load(name):
        return crystal(shared_polymorphs / f"{name}.cif")

    skipped = {("mp-556553", "mp-557134"): "lattice", ("mp-555147", "mp-555235"): "lattice",
               ("mp-556985", "mp-556994"): "lattice", ("mp-556553", "mp-673168"): "sites"}  # fmt: skip
    for (a, b), reason in skipped.items():
        assert verdicts(structure(*load(a)), structure(*load(b))) == (reason, False), (a, b)
    duplicate = load("mp-555891"), load("mp-972808")  # P2_1, RMS 0.115: the same structure relaxed twice
    assert verdicts(*(structure(*c) for c in duplicate)) == (None, True)
    assert tier2(*duplicate) is None


def test_tier2_merges_noisy_and_inverted_copies_only():
    rng = np.random.default_rng(0)
    baddeleyite = crystal(sample_dir() / "mp-2858.cif")  # monoclinic, every site on a free position
    noisy = PERTURBATIONS["noise"](baddeleyite, rng)
    assert 0 < tier2(baddeleyite, noisy) < 0.01
    assert tier2(baddeleyite, PERTURBATIONS["combined"](baddeleyite, rng)) < 0.01
    wurtzite = crystal(sample_dir() / "mp-560588.cif")
    lattice, numbers, frac = wurtzite
    inverted = (lattice, numbers, (-frac) % 1.0)  # the other polarity of the polar axis: the same crystal
    assert tier2(wurtzite, inverted) == pytest.approx(0, abs=1e-6)
    assert tier2(crystal(sample_dir() / "mp-10695.cif"), wurtzite) is None
    stretched = (baddeleyite[0] @ np.diag([1, 1, 1.05]), baddeleyite[1], baddeleyite[2])  # 5 % along z
    assert tier2(baddeleyite, stretched) is None  # past cell_ltol: left to the matcher
