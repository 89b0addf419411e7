"""Map reading: header conventions (axis order, NSTART, ORIGIN), gzip, and one-line errors."""
import gzip
import os

import mrcfile
import numpy as np
import pytest

from cryovalid.errors import InputError
from cryovalid.io.maps import read_map, write_map


def _write(path, data, voxel=1.0, **header):
    with mrcfile.new(str(path), overwrite=True) as m:
        m.set_data(np.asarray(data, dtype=np.float32))
        m.voxel_size = voxel
        for k, v in header.items():
            setattr(m.header, k, v)
    return str(path)


def test_emd21457_origin_and_nstart_variants_agree(shared_real):
    d = os.path.join(shared_real, "EMD-21457")
    a = read_map(os.path.join(d, "emd_21457_seg.mrc"))
    b = read_map(os.path.join(d, "emd_21457_seg_nstart.mrc"))
    c = read_map(os.path.join(d, "emd_21457_seg_orig0.mrc"))
    assert np.array_equal(a.data, b.data) and np.array_equal(a.data, c.data)
    voxel = (10, 20, 30)  # z, y, x
    np.testing.assert_allclose(a.index_to_xyz(voxel), b.index_to_xyz(voxel), atol=1e-3)
    # ORIGIN-only crop: x = 162.75 + 30 * 1.05
    np.testing.assert_allclose(a.index_to_xyz(voxel), [162.75 + 31.5, 231.0 + 21.0,
                                                       204.75 + 10.5], atol=1e-3)
    np.testing.assert_allclose(c.index_to_xyz(voxel), [31.5, 21.0, 10.5], atol=1e-3)


def _density_at_atoms(m, path):
    from scipy import ndimage

    import simulate

    xyz, _ = simulate.load_atoms(path)
    zyx = m.xyz_to_index(xyz)
    inside = np.all((zyx >= 0) & (zyx <= np.array(m.shape) - 1), axis=1)
    dens = ndimage.map_coordinates(m.data, zyx.T, order=1)
    return inside.mean(), (dens.mean() - m.data.mean()) / m.data.std()


def test_models_land_in_their_maps(shared_real):
    d = os.path.join(shared_real, "EMD-21457")
    for mp, model in [("emd_21457_seg.mrc", "6vyb_Ndom.pdb"),
                      ("emd_21457_seg_nstart.mrc", "6vyb_Ndom.pdb"),
                      ("emd_21457_seg_orig0.mrc", "6vyb_Ndom_shifted.pdb")]:
        frac, z = _density_at_atoms(read_map(os.path.join(d, mp)), os.path.join(d, model))
        assert frac > 0.97 and z > 1.0, (mp, frac, z)
    # the unshifted model must NOT fit the origin-0 variant (guards against ignoring ORIGIN)
    frac, z = _density_at_atoms(read_map(os.path.join(d, "emd_21457_seg_orig0.mrc")),
                                os.path.join(d, "6vyb_Ndom.pdb"))
    assert frac < 0.5
    m = read_map(os.path.join(shared_real, "EMD-2566", "2566_3J6B_9.mrc"))
    frac, z = _density_at_atoms(m, os.path.join(shared_real, "EMD-2566", "3J6B_9.pdb"))
    assert frac > 0.97 and z > 1.0


def test_axis_order_321_emd11007(shared_real):
    p = os.path.join(shared_real, "EMD-11007", "emd_11007.map")
    m = read_map(p)
    with mrcfile.mmap(p, permissive=True) as raw:
        assert (raw.header.mapc, raw.header.mapr, raw.header.maps) == (3, 2, 1)
        # columns = Z, rows = Y, sections = X: raw[x, y, z]
        for z, y, x in [(3, 100, 200), (120, 7, 55), (239, 0, 1)]:
            assert m.data[z, y, x] == raw.data[x, y, z]


def test_axis_order_312_emd3001(shared_real):
    p = os.path.join(shared_real, "EMD-3001", "EMD-3001.map")
    with pytest.raises(InputError, match="non-orthogonal"):
        read_map(p)
    m = read_map(p, voxel_size=0.45)  # override: the array is still read with the right axes
    with mrcfile.open(p, permissive=True) as raw:
        assert (raw.header.mapc, raw.header.mapr, raw.header.maps) == (3, 1, 2)
        # columns = Z, rows = X, sections = Y: raw[y, x, z]
        ny, nx, nz = raw.data.shape
        assert m.shape == (nz, ny, nx)
        for z, y, x in [(0, 0, 0), (50, 10, 30), (72, 24, 42)]:
            assert m.data[z, y, x] == raw.data[y, x, z]
        # NSTART (0, -21, -12) is in column/row/section order = (z, x, y)
        np.testing.assert_allclose(m.origin, [-21 * 0.45, -12 * 0.45, 0.0])


def test_gzip_and_round_trip(tmp_path):
    data = np.random.default_rng(0).normal(size=(10, 12, 14)).astype(np.float32)
    p = tmp_path / "a.mrc"
    write_map(str(p), data, 1.5, origin=(10.0, -3.0, 2.25))
    with open(p, "rb") as f, gzip.open(tmp_path / "a.mrc.gz", "wb") as g:
        g.write(f.read())
    for path in (p, tmp_path / "a.mrc.gz"):
        m = read_map(str(path))
        assert np.array_equal(m.data, data)
        assert m.voxel_size == pytest.approx(1.5)
        assert m.origin == pytest.approx((10.0, -3.0, 2.25))


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"),
    ("empty", "empty"),
    ("text", "not a readable MRC"),
    ("truncated", "truncated"),
    ("nan", "NaN"),
    ("constant", "constant"),
    ("zero_voxel", "voxel size"),
    ("anisotropic", "anisotropic"),
    ("image2d", "2-D"),
])
def test_bad_files_give_one_line_errors(tmp_path, case, message):
    p = tmp_path / f"{case}.mrc"
    rng = np.random.default_rng(1)
    vol = rng.normal(size=(16, 16, 16)).astype(np.float32)
    if case == "empty":
        p.write_bytes(b"")
    elif case == "text":
        p.write_text("this is not a map\n" * 100)
    elif case == "truncated":
        _write(p, vol)
        p.write_bytes(p.read_bytes()[:-5000])
    elif case == "nan":
        vol[3, 4, 5] = np.nan
        _write(p, vol)
    elif case == "constant":
        _write(p, np.ones((16, 16, 16)))
    elif case == "zero_voxel":
        _write(p, vol, voxel=0.0)
    elif case == "anisotropic":
        _write(p, vol, voxel=(1.0, 1.0, 1.3))
    elif case == "image2d":
        _write(p, vol[0])
    with pytest.raises(InputError) as err:
        read_map(str(p))
    text = str(err.value)
    assert message in text and "\n" not in text
    assert str(p) in text or case == "missing" and "missing.mrc" in text


def test_voxel_size_override(tmp_path):
    p = _write(tmp_path / "z.mrc", np.random.default_rng(2).normal(size=(16, 16, 16)), voxel=0.0)
    m = read_map(p, voxel_size=1.3)
    assert m.voxel_size == 1.3 and any("overrides" in n for n in m.notes)


def _patch_header(path, offset, fmt, *values):
    import struct

    raw = bytearray(open(path, "rb").read())
    struct.pack_into(fmt, raw, offset, *values)
    open(path, "wb").write(bytes(raw))


@pytest.mark.parametrize("case, message", [
    ("fifo", "not a regular file but a named pipe"),
    ("nan_voxel", "voxel size in the header is not a number"),
    ("image_stack", "a stack of 16 2-D images"),
    ("int16_header_over_float32", "the header and the data disagree"),
    ("gzip_corrupt", "corrupt gzip compression"),
    ("voxel_0.01", "outside the sensible range 0.1–100 Å"),
    ("flat_volume", "a 2-D image"),
])
def test_reader_refuses_what_would_be_misread(tmp_path, case, message):
    """Each of these was read, misread, or misnamed before issue 18 (docs/errors.md)."""
    p = tmp_path / f"{case}.mrc"
    vol = np.random.default_rng(4).normal(size=(16, 16, 16)).astype(np.float32)
    if case == "fifo":
        os.mkfifo(p)
    elif case == "nan_voxel":
        _write(p, vol)
        _patch_header(p, 40, "<3f", *[float("nan")] * 3)  # CELLA
    elif case == "image_stack":
        _write(p, vol)
        _patch_header(p, 88, "<i", 0)  # ISPG 0
        _patch_header(p, 36, "<i", 1)  # MZ 1
    elif case == "int16_header_over_float32":
        _write(p, vol)
        _patch_header(p, 12, "<i", 1)  # MODE 1 over float32 data
    elif case == "gzip_corrupt":
        _write(tmp_path / "src.mrc", vol)
        raw = bytearray(gzip.compress((tmp_path / "src.mrc").read_bytes()))
        raw[100:900] = bytes(b ^ 0x5A for b in raw[100:900])
        p = tmp_path / "bad.mrc.gz"
        p.write_bytes(bytes(raw))
    elif case == "voxel_0.01":
        _write(p, vol, voxel=0.01)
    elif case == "flat_volume":
        _write(p, vol[:1])
        _patch_header(p, 88, "<i", 1)  # ISPG 1: mrcfile reads a (1, 16, 16) volume
    with pytest.raises(InputError) as err:
        read_map(str(p))
    text = str(err.value)
    assert message in text and "\n" not in text and str(p) in text, text


def test_reader_notes_instead_of_silence(tmp_path):
    """A NaN cell angle and a few bytes after the data are accepted, and said."""
    vol = np.random.default_rng(5).normal(size=(16, 16, 16)).astype(np.float32)
    p = _write(tmp_path / "a.mrc", vol)
    _patch_header(p, 52, "<3f", float("nan"), 90.0, 90.0)  # CELLB
    with open(p, "ab") as f:
        f.write(b"\0" * 8)
    m = read_map(p)
    assert np.array_equal(m.data, vol)
    text = " ".join(m.notes)
    assert "cell angle" in text and "not a number" in text and "8 bytes after" in text


def test_real_maps_read_without_notes(shared_real):
    """The checks do not fire on real EMDB maps (ISPG 0 with MZ = NZ, as Chimera writes crops,
    is a volume, not a stack)."""
    for folder, name in [("EMD-21457", "emd_21457_seg.mrc"), ("EMD-2566", "2566_3J6B_9.mrc"),
                         ("EMD-3488", "emd_3488_contour_mask.mrc"),
                         ("EMD-3197", "emd_3197.map.gz"), ("EMD-1997", "emd_1997.map")]:
        m = read_map(os.path.join(shared_real, folder, name))
        assert m.notes == [], (name, m.notes)
