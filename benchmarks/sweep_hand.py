"""Where is the hand analysis (0.h) informative? A sweep over simulated maps of 5me2.

Two sets, each map analysed with its mirror (x reversed); counted: informative (score ≠ 0.5),
right answer (map < 0.5, mirror > 0.5), wrong answer.

* default (``python benchmarks/sweep_hand.py [resolution ...]``, default 4.5 5.0): the edge of
  the range. 1 Å/voxel, B 0/60/120 Å², white noise 0.3/1 σ, two seeds; threshold = level
  enclosing 75 000 Å³. ~1 min.
* ``--snr [resolution ...]`` (default 1.5 1.8 2.2 3 4): maps as a reconstruction delivers them
  (``simulate.simulate_with_snr``: voxel R/2.5, B 30/80 Å², noise giving a full-map SNR of 1/3
  at 1/R), unsharpened and sharpened by B + SHARPEN_EXTRA[R] Å² (helix axes below the
  contour, negative at ≤ 3 Å), two seeds; threshold = 25th percentile of the map at the
  atoms. Also prints the fraction of helix axes below the contour and below zero. ~2 min.
"""
import os
import sys

import numpy as np

os.environ.setdefault("CRYOVALID_WORKERS", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

SHARPEN_EXTRA = {1.5: 0.0, 1.8: 0.0, 2.2: 30.0, 3.0: 60.0, 4.0: 150.0}  # Å² beyond B


def _count(tally, out, mirrored):
    tally["runs"] += 1
    if out.score != 0.5:
        tally["informative"] += 1
        ok = (out.score > 0.5) == mirrored
        tally["right"] += ok
        tally["wrong"] += not ok
    tally["stray"] += out.n_right if mirrored else out.n_left


def _report(res, tally):
    print(f"== R {res:.1f} Å: {tally['runs']} runs, informative {tally['informative']}, right "
          f"{tally['right']}, wrong {tally['wrong']}; votes for the wrong hand in all runs: "
          f"{tally['stray']}", flush=True)


def sweep_edge(resolutions, atoms):
    import simulate
    from cryovalid.kernels import hand as helices

    for res in resolutions or [4.5, 5.0]:
        tally = dict(runs=0, informative=0, right=0, wrong=0, stray=0)
        for b in (0.0, 60.0, 120.0):
            for noise in (0.3, 1.0):
                for seed in (0, 1):
                    vol, ts, _ = simulate.simulate(atoms=atoms, voxel_size=1.0, resolution=res,
                                                   bfactor=b, noise=noise, seed=seed)
                    thr = float(np.quantile(vol, 1.0 - 75000.0 / vol.size))
                    for mirrored in (False, True):
                        v = np.ascontiguousarray(vol[:, :, ::-1]) if mirrored else vol
                        out = helices.determine_hand(v, ts, thr, res, seed=seed)
                        _count(tally, out, mirrored)
                        print(f"R {res:.1f} B {b:5.0f} noise {noise:.1f} seed {seed} "
                              f"{'mirror' if mirrored else 'map   '} score {out.score:.3f} "
                              f"votes right {out.n_right:2d} left {out.n_left:2d}", flush=True)
        _report(res, tally)


def sweep_snr(resolutions, atoms):
    import simulate
    from cryovalid.kernels import hand as helices

    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    import test_hand

    axes = np.array([helices.fit_axis(w)[0]
                     for w in test_hand._model_helix_windows(simulate.EXAMPLE_MODEL)])
    for res in resolutions or [1.5, 1.8, 2.2, 3.0, 4.0]:
        tally = dict(runs=0, informative=0, right=0, wrong=0, stray=0)
        for b in (30.0, 80.0):
            for sharpen in (0.0, b + SHARPEN_EXTRA.get(res, 60.0)):
                for seed in (0, 1):
                    voxel = round(min(1.0, res / 2.5), 2)
                    vol, ts, origin = simulate.simulate_with_snr(res, b, sharpen, voxel, seed,
                                                                 atoms=atoms)
                    thr = float(np.quantile(simulate.values_at_atoms(vol, atoms[0], ts,
                                                                     origin), 0.25))
                    ax = simulate.values_at_atoms(vol, axes, ts, origin)
                    row = []
                    for mirrored in (False, True):
                        v = np.ascontiguousarray(vol[:, :, ::-1]) if mirrored else vol
                        out = helices.determine_hand(v, ts, thr, res, seed=seed)
                        _count(tally, out, mirrored)
                        row.append(f"{'mirror' if mirrored else 'map'} {out.score:.3f} "
                                   f"(right {out.n_right:2d} left {out.n_left:2d})")
                    print(f"R {res:.1f} B {b:3.0f} sharpen {sharpen:3.0f} seed {seed} axes < T "
                          f"{np.mean(ax < thr):.2f}, < 0 {np.mean(ax < 0):.2f} | "
                          + " | ".join(row), flush=True)
        _report(res, tally)


def main():
    import simulate

    args = sys.argv[1:]
    snr = "--snr" in args
    resolutions = [float(a) for a in args if a != "--snr"]
    atoms = simulate.load_atoms()
    (sweep_snr if snr else sweep_edge)(resolutions, atoms)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
