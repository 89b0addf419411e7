"""O.a Cross-linking mass spectrometry: does the atomic model satisfy the measured cross-links?

A cross-linker of a given spacer arm can only join two residues whose side chains can meet
through the solvent. For each link of the ``--crosslinks`` list the solvent-accessible surface
distance (SASD) between the two residues' Cα atoms through the model is measured as Jwalk
defines it (Bullock et al. 2016, Mol. Cell. Proteomics 15:2491; :mod:`cryovalid.kernels.sasd`),
with the straight Cα–Cα distance beside it; a link is satisfied when its SASD is at most its
linker's maximum (:mod:`cryovalid.io.crosslinks`: 33 Å for
DSS/BS3, the reference's XLM-Tools/Jwalk default).

Rules (all lengths Å):

* the model as read is used (a distance within the model does not depend on where the model
  is placed in the map); hydrogens and waters do not block the path; the linked residues'
  own atoms do not either (the path starts at their Cα and the linker reaches out along their
  side chains; Jwalk keeps their backbone, but a Cα lies inside its own backbone's excluded
  zone, and the start voxel it is then forced to depends on which side of the backbone is
  open);
* a link naming a residue (or chain) the model lacks, or a residue without a Cα, is
  listed as "not in the model"; a linked residue whose Cα has no solvent within
  :data:`~cryovalid.kernels.sasd.SEED_RADIUS_A` is "buried"; a SASD beyond
  :data:`SEARCH_FACTOR` × the link's maximum is not searched ("longer than"); all three are
  not satisfied and **count in the denominator** (the links were measured on the molecule: a
  model that lacks or buries a linked residue does not explain the link);
* the criterion is the reference's stated one, strictly more than half satisfied (its code
  accepts exactly half), over the link lines only (its code divides by every line of the file,
  blank and header lines too).
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import NotApplicable
from cryovalid.io.crosslinks import DEFAULT_MAX_SASD_A
from cryovalid.items.base import Fact, Table, new_result
from cryovalid.kernels.sasd import GRID_A, PROBE_RADIUS_A, SEED_RADIUS_A, sasd_from, vdw_radii

ID = "O.a"
LEVEL = "O"
REQUIRES = ("crosslinks", "model")
TITLE = "Cross-linking mass spectrometry"
SECTION = "Level O analysis"
MIN_SATISFIED_FRACTION = 0.5  # strictly more than this fraction of the links must be satisfied
SEARCH_FACTOR = 1.5  # SASDs are searched up to this × the link's maximum
WATERS = ("HOH", "WAT", "DOD", "H2O")

SATISFIED, VIOLATED = "satisfied", "violated"
NOT_IN_MODEL, BURIED, TOO_LONG = "not in the model", "buried", "longer than the search"

WARN_FEW = ("Only {satisfied:d} of the {links:d} cross-links ({percent:.0f} %) are satisfied by "
            "the model (SASD at most the linker's maximum); more than {limit:.0f} % should be.")

EXPLANATION = (
    "A chemical cross-linker joins two residues only if their side chains can meet through the "
    "solvent within the linker's reach. For every cross-link the solvent-accessible surface "
    "distance (SASD, Jwalk: the shortest path between the two Cα atoms that avoids the model's "
    f"atoms, each inflated by {PROBE_RADIUS_A:g} Å, on a {GRID_A:g} Å grid) is "
    f"compared with the linker's maximum ({DEFAULT_MAX_SASD_A:g} Å for DSS/BS3). Links naming "
    "residues the model lacks, buried residues and paths longer than the search count as not "
    "satisfied.")

CRITERIA = (f"OK if more than {100 * MIN_SATISFIED_FRACTION:.0f} % of the cross-links are "
            f"satisfied (SASD at most the linker's maximum).")


def _residue_table(m):
    """(chain, resseq, icode) -> residue row."""
    return {(c, int(n), i): r for r, (c, n, i) in enumerate(zip(
        m.chain.tolist(), m.resseq.tolist(), m.icode.tolist()))}


def _named(m, name) -> np.ndarray:
    """(n,) bool: the atoms called ``name`` ("CA": carbon atoms only, not calcium ions)."""
    sel = m.atom_name == name
    return sel & (m.element == "C") if name == "CA" else sel


def _atom_of(m, rows, name):
    """(n_residues, 3) position of the atom ``name`` of each residue (NaN where absent)."""
    out = np.full((m.n_residues, 3), np.nan)
    sel = np.flatnonzero(_named(m, name))
    out[m.residue_index[sel]] = m.xyz[sel]
    return out


def _crosses(path, xyz, radii) -> bool:
    """Whether a path's voxel centres come within an atom's van der Waals radius + the probe
    of any of these atoms (the voxels a search that let these atoms through could use)."""
    if len(xyz) == 0:
        return False
    d2 = np.sum((path[:, None, :] - xyz[None, :, :]) ** 2, axis=-1)
    return bool(np.any(d2 <= ((radii + PROBE_RADIUS_A) ** 2)[None, :]))


def measure(model, links):
    """Per link: Cα–Cα distance (Å), SASD (Å, inf when none), status; see the module text.

    ``model`` is a :class:`cryovalid.io.model.Model`, ``links`` the
    :class:`cryovalid.io.crosslinks.Link` list. Links sharing a residue share one
    shortest-path search (the residue in most unmeasured links is searched from first), in
    which every partner's own atoms are let through; a link whose shortest path there runs
    through another partner's atoms is searched again alone, so that each link's SASD is the
    one it has on its own (exactly: the shared search's free voxels include the link's own).
    A SASD beyond the link's own search limit is reported as not found, whatever the others'."""
    table = _residue_table(model)
    anchor = _atom_of(model, table, "CA")  # Jwalk measures Cα to Cα
    k = len(links)
    euclid, sasd = np.full(k, np.nan), np.full(k, np.nan)
    status = [""] * k
    ends = []
    for j, ln in enumerate(links):
        r1 = table.get((ln.chain1, ln.resseq1, ln.icode1))
        r2 = table.get((ln.chain2, ln.resseq2, ln.icode2))
        if r1 is None or r2 is None or not (np.all(np.isfinite(anchor[r1]))
                                            and np.all(np.isfinite(anchor[r2]))):
            status[j] = NOT_IN_MODEL
            ends.append(None)
            continue
        ends.append((r1, r2))
        euclid[j] = float(np.linalg.norm(anchor[r1] - anchor[r2]))

    heavy = ~model.is_hydrogen & ~np.isin(model.resname[model.residue_index], WATERS)
    radii = vdw_radii(model.element)
    todo = {j for j, e in enumerate(ends) if e is not None}
    while todo:
        count = {}
        for j in todo:
            for r in ends[j]:
                count[r] = count.get(r, 0) + 1
        src = max(sorted(count), key=lambda r: count[r])
        group = sorted(j for j in todo if src in ends[j])
        partners = [ends[j][1] if ends[j][0] == src else ends[j][0] for j in group]
        block = heavy & ~np.isin(model.residue_index, [src, *partners])
        limit = SEARCH_FACTOR * max(links[j].max_A for j in group)
        d, src_free, tgt_free, paths = sasd_from(anchor[src], anchor[partners],
                                                 model.xyz[block], radii[block], limit,
                                                 return_paths=True)
        for j, p, dj, tf, path in zip(group, partners, d, tgt_free, paths):
            own = SEARCH_FACTOR * links[j].max_A
            others = heavy & np.isin(model.residue_index, partners) & (
                model.residue_index != p) & (model.residue_index != src)
            if path is not None and _crosses(path, model.xyz[others], radii[others]):
                # the shared search let this path through another partner's atoms: this link
                # alone (its own two residues free) is searched again
                alone = heavy & ~np.isin(model.residue_index, [src, p])
                dd, src_free_j, tf_j = sasd_from(anchor[src], anchor[p][None],
                                                 model.xyz[alone], radii[alone], own)
                dj, tf = dd[0], tf_j[0]
            else:
                src_free_j = src_free
            dj = dj if dj <= own else np.inf  # as if searched alone, up to its own limit
            sasd[j] = dj
            direct = float(np.linalg.norm(anchor[p] - anchor[src]))
            if np.isfinite(dj):
                status[j] = SATISFIED if dj <= links[j].max_A else VIOLATED
            elif direct <= own and (not src_free_j or not tf):
                status[j] = BURIED
            else:
                status[j] = TOO_LONG
        todo -= set(group)
    return euclid, sasd, status


def run(ctx):
    res = new_result(sys.modules[__name__])
    xl = ctx.crosslinks
    m = ctx.model.model
    links = list(xl.links)
    if not links:
        raise NotApplicable("the cross-link list holds no link")
    euclid, sasd, status = measure(m, links)
    n = len(links)
    st = np.array(status)
    n_ok = int(np.count_nonzero(st == SATISFIED))
    n_missing = int(np.count_nonzero(st == NOT_IN_MODEL))
    n_buried = int(np.count_nonzero(st == BURIED))
    n_long = int(np.count_nonzero(st == TOO_LONG))
    n_viol = int(np.count_nonzero(st == VIOLATED))
    frac = n_ok / n
    fin = np.isfinite(sasd)
    res.metrics.update(
        links=n, links_satisfied=n_ok, links_violated=n_viol + n_buried + n_long,
        links_not_in_model=n_missing, links_buried=n_buried, links_beyond_search=n_long,
        satisfied_fraction=frac,
        sasd_median_A=float(np.median(sasd[fin])) if np.any(fin) else None,
        euclidean_median_A=(float(np.nanmedian(euclid)) if np.any(np.isfinite(euclid))
                            else None))
    res.facts += [Fact("Cross-link file", xl.name, "", "{}"),
                  Fact("SHA-256", xl.sha256, "", "{}"),
                  Fact("Cross-links", n, "", "{:d}"),
                  Fact("Satisfied", n_ok, "", "{:d}"),
                  Fact("Satisfied fraction", 100.0 * frac, "%", "{:.1f}"),
                  Fact("Violated (SASD above the maximum)", n_viol, "", "{:d}"),
                  Fact("Buried residue (no solvent path)", n_buried, "", "{:d}"),
                  Fact("Longer than the search", n_long, "", "{:d}"),
                  Fact("Not in the model", n_missing, "", "{:d}")]
    rows = []
    for ln, e, s, word in zip(links, euclid, sasd, status):
        rows.append([ln.residue1, ln.chain1, ln.residue2, ln.chain2, ln.linker or "–",
                     float(e) if np.isfinite(e) else None,
                     float(s) if np.isfinite(s) else None, float(ln.max_A),
                     "yes" if word == SATISFIED else "no", word])
    res.tables.append(Table(
        "Cross-links: Cα–Cα (Euclidean) distance and solvent-accessible surface distance "
        "(SASD), both Cα–Cα",
        ["Residue 1", "Chain 1", "Residue 2", "Chain 2", "Linker", "Euclidean (Å)",
         "SASD (Å)", "Max (Å)", "Satisfied", "Status"], rows,
        ["{}", "{}", "{}", "{}", "{}", "{:.1f}", "{:.1f}", "{:.1f}", "{}", "{}"]))
    res.notes.append(
        f"SASD between Cα atoms on a {GRID_A:g} Å grid (26-connected shortest path, as Jwalk: "
        f"never shorter than the exact shortest path, up to about 12 % longer), atoms "
        f"inflated by "
        f"{PROBE_RADIUS_A:g} Å, paths starting within {SEED_RADIUS_A:g} Å of each Cα; "
        f"searched up to {SEARCH_FACTOR:g} × each link's maximum.")
    if n_missing:
        res.notes.append(
            f"{n_missing} of the {n} links name a residue the model lacks (or one without a "
            f"Cα): they count as not satisfied.")
    if n_buried:
        res.notes.append(f"{n_buried} link{'s' if n_buried != 1 else ''} join a residue buried "
                         f"in the model (no solvent path): not satisfied.")
    if not frac > MIN_SATISFIED_FRACTION:
        res.warn("few_satisfied", WARN_FEW, satisfied=n_ok, links=n, percent=100.0 * frac,
                 limit=100.0 * MIN_SATISFIED_FRACTION)
        res.summary = ("It seems that many of the cross-links are not met by the model "
                       "(see O.a).")
    res.data.update(
        links=links, euclidean=euclid, sasd=sasd, status=status,
        ca_xyz=m.xyz[_named(m, "CA")], ca_chain=m.chain[m.residue_index[_named(m, "CA")]],
        ends=_end_points(m, links))
    return res.finish()


def _end_points(m, links):
    """(k, 2, 3) Cα positions of each link's two residues (NaN where not in the model)."""
    table = _residue_table(m)
    ca = _atom_of(m, table, "CA")
    out = np.full((len(links), 2, 3), np.nan)
    for j, ln in enumerate(links):
        for e, key in enumerate(((ln.chain1, ln.resseq1, ln.icode1),
                                 (ln.chain2, ln.resseq2, ln.icode2))):
            r = table.get(key)
            if r is not None:
                out[j, e] = ca[r]
    return out
