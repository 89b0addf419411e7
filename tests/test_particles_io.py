"""Reading particles (Level 3's input): RELION 3.1 STAR with optics, RELION 3.0 STAR, a plain
stack; lazy images from memory-mapped stacks; one-line errors for every broken input."""
import os

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from cryovalid.errors import InputError
from cryovalid.io.particles import read_particles


def _stack(path, n, box=24, pixel=1.5, seed=0):
    data = np.random.default_rng(seed).normal(size=(n, box, box)).astype(np.float32)
    data += np.arange(n, dtype=np.float32)[:, None, None] * 10  # image i has mean 10·i
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.set_image_stack()
        m.voxel_size = pixel
    return data


def _star31(path, names, pixel=1.5, groups=None):
    n = len(names)
    groups = groups or [1] * n
    optics = pd.DataFrame({"rlnOpticsGroup": sorted(set(groups)),
                           "rlnImagePixelSize": [pixel] * len(set(groups)),
                           "rlnVoltage": [300.0] * len(set(groups)),
                           "rlnSphericalAberration": [2.7] * len(set(groups)),
                           "rlnAmplitudeContrast": [0.1] * len(set(groups))})
    parts = pd.DataFrame({"rlnImageName": names, "rlnOpticsGroup": groups,
                          "rlnDefocusU": np.linspace(1e4, 3e4, n),
                          "rlnAngleRot": np.zeros(n), "rlnOriginXAngst": np.ones(n)})
    starfile.write({"optics": optics, "particles": parts}, path, overwrite=True)


def test_relion31_star_with_optics_and_stacks_in_the_project_folder(tmp_path):
    (tmp_path / "Extract").mkdir()
    (tmp_path / "Select").mkdir()
    a = _stack(tmp_path / "Extract" / "a.mrcs", 5, seed=1)
    b = _stack(tmp_path / "Extract" / "b.mrcs", 3, seed=2)
    names = [f"{i:06d}@Extract/a.mrcs" for i in (1, 3, 5)] + ["000002@Extract/b.mrcs"]
    _star31(tmp_path / "Select" / "particles.star", names)  # stacks relative to the project
    p = read_particles(str(tmp_path / "Select" / "particles.star"))
    assert len(p) == 4 and p.box == 24 and p.pixel_size == 1.5
    assert (p.voltage_kv, p.cs_mm, p.q0) == (300.0, 2.7, 0.1)
    imgs = p.images([3, 0, 2])
    assert imgs.dtype == np.float32 and imgs.shape == (3, 24, 24)
    np.testing.assert_array_equal(imgs[0], b[1])
    np.testing.assert_array_equal(imgs[1], a[0])
    np.testing.assert_array_equal(imgs[2], a[4])
    assert p.missing("rlnDefocusU", "rlnAngleTilt") == ["rlnAngleTilt"]
    p.close()


def test_a_star_with_its_one_stack_given_apart(tmp_path):
    """``stack=``: every particle is read from the given stack, whatever the STAR names it (the
    service stores the upload as particles_stack.mrcs); a STAR naming two stacks is refused,
    and so is a stack given with a stack."""
    a = _stack(tmp_path / "stored.mrcs", 4, seed=3)
    _star31(tmp_path / "run.star", [f"{i:06d}@Extract/job007/particles.mrcs" for i in (4, 1)])
    p = read_particles(str(tmp_path / "run.star"), stack=str(tmp_path / "stored.mrcs"))
    np.testing.assert_array_equal(p.images([0, 1]), a[[3, 0]])
    p.close()
    _star31(tmp_path / "two.star", ["000001@x.mrcs", "000002@y.mrcs"])
    with pytest.raises(InputError, match=r"two.star: the particles are in 2 stacks"):
        read_particles(str(tmp_path / "two.star"), stack=str(tmp_path / "stored.mrcs"))
    with pytest.raises(InputError, match="goes with a STAR file"):
        read_particles(str(tmp_path / "stored.mrcs"), stack=str(tmp_path / "stored.mrcs"))


def test_relion30_star_pixel_from_detector_and_origins_in_pixels(tmp_path):
    _stack(tmp_path / "s.mrcs", 2, pixel=0.0)
    t = pd.DataFrame({"rlnImageName": ["000001@s.mrcs", "000002@s.mrcs"],
                      "rlnDetectorPixelSize": [5.0, 5.0], "rlnMagnification": [40000.0] * 2,
                      "rlnVoltage": [200.0] * 2, "rlnOriginX": [2.0, -1.0]})
    starfile.write(t, tmp_path / "p.star", overwrite=True)
    p = read_particles(str(tmp_path / "p.star"), cs_mm=2.0, q0=0.07)
    assert p.pixel_size == pytest.approx(1.25)  # 5 µm × 10⁴ / 40 000
    assert (p.voltage_kv, p.cs_mm, p.q0) == (200.0, 2.0, 0.07)
    np.testing.assert_allclose(p.table["rlnOriginXAngst"], [2.5, -1.25])


def test_a_plain_stack_and_a_pixel_size_that_disagrees(tmp_path):
    data = _stack(tmp_path / "s.mrcs", 4, pixel=2.0)
    p = read_particles(str(tmp_path / "s.mrcs"))
    assert len(p) == 4 and p.pixel_size == 2.0 and p.voltage_kv is None
    np.testing.assert_array_equal(p.images(np.array([False, True, False, True])),
                                  data[[1, 3]])
    p2 = read_particles(str(tmp_path / "s.mrcs"), pixel_size=2.2)
    assert p2.pixel_size == 2.2 and "2.2 Å as given is used" in p2.notes[0]


@pytest.mark.parametrize("case, message", [
    ("missing_stack", r"2 particle\(s\) point to the stack 'gone.mrcs', which is not in"),
    ("bad_name", r"rlnImageName 'gone' \(particle 1\) is not INDEX@STACK"),
    ("index_beyond", r"a particle is image 9 of .*s.mrcs, which holds 3"),
    ("no_image_column", r"no rlnImageName column"),
    ("unknown_optics_group", r"particles refer to optics group\(s\) 2 that data_optics lacks"),
    ("not_square", r"the particle images are 20×24 px; they must be square"),
    ("no_pixel", r"no pixel size in the file; give it with --particles-pixel"),
    ("bad_voltage", r"voltage kv 3000 is outside 20–1000"),
    ("not_star", r"not a readable STAR file|no data table|no rlnImageName"),
])
def test_broken_particles_are_one_line_errors(tmp_path, case, message):
    _stack(tmp_path / "s.mrcs", 3)
    star = tmp_path / "p.star"
    kw = {}
    if case == "missing_stack":
        _star31(star, ["000001@gone.mrcs", "000002@gone.mrcs"])
    elif case == "bad_name":
        _star31(star, ["gone"])
    elif case == "index_beyond":
        _star31(star, ["000009@s.mrcs"])
    elif case == "no_image_column":
        starfile.write(pd.DataFrame({"rlnDefocusU": [1.0]}), star, overwrite=True)
    elif case == "unknown_optics_group":
        _star31(star, ["000001@s.mrcs", "000002@s.mrcs"], groups=[1, 2])
        d = starfile.read(star, always_dict=True)
        d["optics"] = d["optics"][d["optics"]["rlnOpticsGroup"] == 1]
        starfile.write(d, star, overwrite=True)
    elif case == "not_square":
        with mrcfile.new(tmp_path / "s.mrcs", overwrite=True) as m:
            m.set_data(np.zeros((2, 24, 20), np.float32))
            m.voxel_size = 1.0
        star = tmp_path / "s.mrcs"
    elif case == "no_pixel":
        _stack(tmp_path / "s.mrcs", 3, pixel=0.0)
        star = tmp_path / "s.mrcs"
    elif case == "bad_voltage":
        _star31(star, ["000001@s.mrcs"])
        kw = {"voltage_kv": 3000}
    elif case == "not_star":
        star.write_text("this is not a star file\n")
    with pytest.raises(InputError, match=message) as exc:
        read_particles(str(star), **kw)
    assert "\n" not in str(exc.value)
    assert os.path.basename(str(star)) in str(exc.value) or "s.mrcs" in str(exc.value)


def test_a_subset_is_seeded_random_in_file_order_and_says_so(tmp_path):
    """Particles.subset: at most N particles, a seeded random subset kept in the file's order
    (the table, stacks and images follow), n_given and a note; 0, None or a larger cap give
    the particles themselves."""
    a = _stack(tmp_path / "a.mrcs", 10, seed=4)
    _star31(tmp_path / "p.star", [f"{i:06d}@a.mrcs" for i in range(1, 11)])
    p = read_particles(str(tmp_path / "p.star"))
    assert p.subset(0) is p and p.subset(None) is p and p.subset(10) is p
    s = p.subset(4)
    assert len(s) == 4 and s.n_given == 10 and s.subset(4) is s
    rows = [int(n.split("@")[0]) - 1 for n in s.table["rlnImageName"]]
    assert rows == sorted(rows) and len(set(rows)) == 4
    np.testing.assert_array_equal(s.images(np.arange(4)), a[rows])
    np.testing.assert_allclose(s.table["rlnDefocusU"], p.table["rlnDefocusU"].to_numpy()[rows])
    assert any("4 of the 10 particles" in n for n in s.notes)
    assert p.subset(4).table.equals(s.table)  # seeded: the same subset every time
