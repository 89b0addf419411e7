"""Where is the hand analysis (0.h) informative? A sweep over simulated maps of 5me2.

For each resolution, B-factor, noise level and seed: simulate the map (1 Å/voxel, threshold =
level enclosing 75 000 Å³), run the analysis on the map and on its mirror (x reversed), and
count: informative (score ≠ 0.5), right answer (map < 0.5, mirror > 0.5), wrong answer.
Usage: python benchmarks/sweep_hand.py [resolution ...]   (default 4.5 5.0); takes ~1 min.
"""
import os
import sys

import numpy as np

os.environ.setdefault("CRYOVALID_WORKERS", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def main():
    import simulate
    from cryovalid.kernels import helices

    resolutions = [float(a) for a in sys.argv[1:]] or [4.5, 5.0]
    atoms = simulate.load_atoms()
    for res in resolutions:
        runs = informative = right = wrong = 0
        for b in (0.0, 60.0, 120.0):
            for noise in (0.3, 1.0):
                for seed in (0, 1):
                    vol, ts, _ = simulate.simulate(atoms=atoms, voxel_size=1.0, resolution=res,
                                                   bfactor=b, noise=noise, seed=seed)
                    thr = float(np.quantile(vol, 1.0 - 75000.0 / vol.size))
                    for mirrored in (False, True):
                        v = np.ascontiguousarray(vol[:, :, ::-1]) if mirrored else vol
                        out = helices.determine_hand(v, ts, thr, res, seed=seed)
                        runs += 1
                        if out.score != 0.5:
                            informative += 1
                            ok = (out.score > 0.5) == mirrored
                            right += ok
                            wrong += not ok
                        print(f"R {res:.1f} B {b:5.0f} noise {noise:.1f} seed {seed} "
                              f"{'mirror' if mirrored else 'map   '} score {out.score:.3f} "
                              f"votes right {out.n_right:2d} left {out.n_left:2d}", flush=True)
        print(f"== R {res:.1f} Å: {runs} runs, informative {informative}, right {right}, "
              f"wrong {wrong}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
