"""Small helpers shared by the figure modules: where figures go, and a histogram."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def relative(ctx, path):
    return os.path.relpath(path, ctx.out_dir)


def figure_path(ctx, name):
    os.makedirs(ctx.figure_dir, exist_ok=True)
    return os.path.join(ctx.figure_dir, name)


def histogram(values, path, xlabel, marker=None, marker_label=None, bins=25):
    """Histogram helper shared by items with distributions (25 bins, as the reference)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(np.asarray(values).ravel(), bins=bins, color="#2596be", edgecolor="white")
    if marker is not None:
        ax.axvline(marker, color="#b03030", ls="--", label=marker_label)
        ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Count")
    ax.grid(True, alpha=0.4)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
