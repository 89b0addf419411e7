"""Small helpers shared by the figure modules: where figures go, print sizes, a histogram.

Print size: the report shows a figure at its physical size (the PNG's pixels / its dpi) and
never wider than the text (182 mm on A4), so a figure drawn at ``figsize`` inches no wider than
``PRINT_WIDTH_IN`` keeps its font sizes on paper. Every font is at least ``MIN_FONT_PT``.
"""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


DPI = 150  # pixels per inch of the saved PNGs (sharp on paper, small files)
PRINT_WIDTH_IN = 6.7  # 17 cm: the widest figure, shown at its size in the PDF
MIN_FONT_PT = 7.0


def relative(ctx, path):
    return os.path.relpath(path, ctx.out_dir)


def figure_path(ctx, name):
    os.makedirs(ctx.figure_dir, exist_ok=True)
    return os.path.join(ctx.figure_dir, name)


def histogram(values, path, xlabel, marker=None, marker_label=None, bins=25):
    """Histogram helper shared by items with distributions (25 bins, as the reference)."""
    fig, ax = plt.subplots(figsize=(4.6, 2.5))
    ax.hist(np.asarray(values).ravel(), bins=bins, color="#2596be", edgecolor="white")
    if marker is not None:
        ax.axvline(marker, color="#b03030", ls="--", label=marker_label)
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Count")
    ax.grid(True, alpha=0.4)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
