"""Small helpers shared by the figure modules: where figures go, print sizes, a histogram.

Print size: the report shows a figure at its physical size (the PNG's pixels / its dpi) and
never wider than the text (182 mm on A4), so a figure drawn at ``figsize`` inches no wider than
``PRINT_WIDTH_IN`` keeps its font sizes on paper. Every font is at least ``MIN_FONT_PT``.
"""
from __future__ import annotations

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure


DPI = 150  # pixels per inch of the saved PNGs (sharp on paper, small files)
PRINT_WIDTH_IN = 6.7  # 17 cm: the widest figure, shown at its size in the PDF
MIN_FONT_PT = 7.0


def new_figure(figsize, **kwargs) -> MplFigure:
    """A matplotlib figure with its own Agg canvas: drawn and saved headless without pyplot, so
    no backend is chosen or switched process-wide and no figure is left in a global registry
    (there is nothing to close; the figure is freed with its last reference)."""
    fig = MplFigure(figsize=figsize, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def subplots(nrows=1, ncols=1, *, figsize, **kwargs):
    """``(figure, axes)`` as ``matplotlib.pyplot.subplots`` gives them, from :func:`new_figure`;
    ``kwargs`` go to ``Figure.subplots`` (squeeze, sharex, gridspec_kw, …)."""
    fig = new_figure(figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def relative(ctx, path):
    return os.path.relpath(path, ctx.out_dir)


def figure_path(ctx, name):
    os.makedirs(ctx.figure_dir, exist_ok=True)
    return os.path.join(ctx.figure_dir, name)


def histogram(values, path, xlabel, marker=None, marker_label=None, bins=25):
    """Histogram helper shared by items with distributions (25 bins, as the reference)."""
    fig, ax = subplots(figsize=(4.6, 2.5))
    ax.hist(np.asarray(values).ravel(), bins=bins, color="#2596be", edgecolor="white")
    if marker is not None:
        ax.axvline(marker, color="#b03030", ls="--", label=marker_label)
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Count")
    ax.grid(True, alpha=0.4)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path
