"""The layers stay apart (docs/architecture.md): items and kernels compute, the store writes,
the renderer formats. Checked on the source text, so that a shortcut fails here at once."""
import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "cryovalid"
# what a computing module must not reach: drawing, rendering, writing, the front ends
FORBIDDEN_IMPORTS = ("cryovalid.figures", "cryovalid.report", "cryovalid.store",
                     "cryovalid.io.output", "cryovalid.cli", "cryovalid.api", "matplotlib",
                     "vtk", "weasyprint", "jinja2")
# what writes a file
FILE_CALLS = {"open", "write_map", "savefig", "to_csv"}
MODULES = sorted(p for sub in ("items", "kernels") for p in (SRC / sub).rglob("*.py"))
FIGURES = sorted((SRC / "figures").rglob("*.py"))


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def _calls(tree):
    """Names of the functions called (``Image.open`` reads an image: only the builtin ``open``
    counts as opening a file)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                yield f.id
            elif isinstance(f, ast.Attribute):
                yield f.attr if f.attr != "open" else "attribute open"


@pytest.mark.parametrize("path", MODULES, ids=[f"{p.parent.name}/{p.name}" for p in MODULES])
def test_items_and_kernels_neither_draw_nor_write(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = [m for m in _imports(tree) if m.startswith(FORBIDDEN_IMPORTS)]
    assert not bad, f"{path.name} imports {bad}"
    writes = sorted(set(_calls(tree)) & FILE_CALLS)
    assert not writes, f"{path.name} writes files itself ({writes}): hand an artefact instead"


def test_items_do_not_ask_the_context_for_output_paths():
    for path in (SRC / "items").glob("*.py"):
        assert "ctx.path(" not in path.read_text(encoding="utf-8"), path.name


@pytest.mark.parametrize("path", MODULES, ids=[f"{p.parent.name}/{p.name}" for p in MODULES])
def test_kernels_never_see_the_context(path):
    """Kernels take per-input data objects or plain arrays (docs/architecture.md)."""
    if path.parent.name == "items":
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = [m for m in _imports(tree) if m in ("cryovalid.context", "cryovalid.pipeline")]
    assert not bad, f"{path.name} imports {bad}"
    assert "ctx." not in path.read_text(encoding="utf-8").split('"""', 2)[-1], path.name


@pytest.mark.parametrize("path", FIGURES, ids=[p.name for p in FIGURES])
def test_figures_hand_their_images_to_the_store(path):
    """A figure function returns a Drawing (PNG bytes, scripts); the store writes them. Only
    figures/common.png renders a matplotlib figure, into memory."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = set(_calls(tree))
    writes = sorted(calls & (FILE_CALLS | {"makedirs", "SetFileName", "Write"}) - {"savefig"})
    assert not writes, f"{path.name} writes files itself ({writes})"
    if "savefig" in calls:
        assert path.name == "common.py", f"{path.name} calls savefig: use common.png(fig)"


@pytest.mark.parametrize("layer", ["figures", "report"])
def test_the_result_model_stands_apart_from_items(layer):
    """Figures and the renderer read results (cryovalid.results), never the items' code."""
    for path in sorted((SRC / layer).glob("*.py")) + [SRC / "store.py"]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bad = [m for m in _imports(tree) if m.startswith("cryovalid.items")]
        assert not bad, f"{path.name} imports {bad}"
    tree = ast.parse((SRC / "results.py").read_text(encoding="utf-8"))
    assert all(m in ("__future__", "dataclasses") for m in _imports(tree))


def test_items_declare_themselves_and_the_registry_orders_them():
    from cryovalid import registry
    from cryovalid.items.base import REQUIREMENTS

    mods = registry.items()
    assert [m.ID for m in mods] == sorted((m.ID for m in mods),
                                          key=lambda i: (registry.LEVEL_ORDER.index(i[0]), i))
    for m in mods:
        assert m.ID.startswith(m.LEVEL + "."), m.ID
        assert set(m.REQUIRES) <= set(REQUIREMENTS), m.ID
        assert m.TITLE and m.EXPLANATION and isinstance(m.CRITERIA, str)
        assert callable(m.run)
    assert set(registry.draws()) <= {m.ID for m in mods}  # no figure for an unknown item


def test_a_missing_requirement_is_said_once_for_every_item(clean_map):
    """Without --resolution every item that REQUIRES it does not apply, with the same reason,
    and without half maps the Level 1 items neither run nor crash."""
    import numpy as np

    from cryovalid import registry
    from cryovalid.context import Context
    from cryovalid.io.maps import Map
    from cryovalid.items.base import NOT_APPLICABLE, REQUIREMENTS, run_item

    vol, ts, _ = clean_map
    ctx = Context.of(map=Map(data=vol, voxel_size=ts, path="sim.mrc"),
                  threshold=float(np.quantile(vol, 0.97)))
    for m in registry.items():
        if not m.REQUIRES:
            continue
        res = run_item(m, ctx)
        assert res.status == NOT_APPLICABLE, m.ID
        assert res.reason == REQUIREMENTS[m.REQUIRES[0]][1], m.ID


def test_the_verdict_follows_the_warnings_whatever_the_item_set():
    """An item that warns is graded 'warnings' even when its run() returned the result without
    calling finish() (2.a, 3.a, 3.b and 3.c once did, and were shown OK with a warning); an
    item without warnings is OK."""
    import types

    from cryovalid.items.base import OK, WARNINGS, new_result, run_item

    def module(warn):
        m = types.SimpleNamespace(ID="T.1", TITLE="t", SECTION="s", EXPLANATION="",
                                  CRITERIA="OK if t", REQUIRES=())

        def run(ctx):
            res = new_result(m)
            if warn:
                res.warn("w", "a warning")
            return res
        m.run = run
        return m

    assert run_item(module(True), None).status == WARNINGS
    assert run_item(module(False), None).status == OK


def test_at_threshold_shares_only_what_does_not_depend_on_the_threshold(clean_map):
    """MapData.at_threshold: the Fourier transform and filter bank are the same objects, the
    masks are those of a fresh MapData at the new threshold."""
    import numpy as np

    from cryovalid.data import MapData
    from cryovalid.io.maps import Map

    vol, ts, _ = clean_map
    m = Map(data=vol, voxel_size=ts, path="sim.mrc")
    low, high = (float(np.quantile(vol, q)) for q in (0.95, 0.99))
    base = MapData(m, low)
    ft, bank, mask = base.ft, base.filter_bank, base.hard_mask
    other = base.at_threshold(high)
    assert other.threshold == high and other.ft is ft and other.filter_bank is bank
    np.testing.assert_array_equal(other.hard_mask, MapData(m, high).hard_mask)
    assert other.hard_mask.sum() < mask.sum()
