"""Small helpers shared by the figure modules: what a figure function hands back, print sizes,
a histogram.

A figure function never opens a file: it returns a :class:`Drawing` (the report's
:class:`~cryovalid.results.Figure` entries and the artefacts behind them: PNG
:class:`~cryovalid.results.Image` bytes, ChimeraX scripts), which the pipeline hands to the store.

Print size: the report shows a figure at its physical size (the PNG's pixels / its dpi) and
never wider than the text (182 mm on A4), so a figure drawn at ``figsize`` inches no wider than
``PRINT_WIDTH_IN`` keeps its font sizes on paper. Every font is at least ``MIN_FONT_PT``.
"""
from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure

from cryovalid.results import Figure, Image

DPI = 150  # pixels per inch of the saved PNGs (sharp on paper, small files)
PRINT_WIDTH_IN = 6.7  # 17 cm: the widest figure, shown at its size in the PDF
MIN_FONT_PT = 7.0
FIGURE_DIR = "figures"  # where the report keeps its PNGs (relative to the report)


class Drawing:
    """What a figure function returns: ``figures`` (the report's entries, in order) and
    ``artefacts`` (the PNG images behind them and any other file, for the store)."""

    def __init__(self):
        self.figures: list = []
        self.artefacts: list = []

    def add(self, name: str, png: bytes, caption: str) -> Figure:
        """A figure ``figures/<name>`` with its PNG bytes and caption."""
        path = f"{FIGURE_DIR}/{name}"
        self.artefacts.append(Image(path, png))
        fig = Figure(path, caption)
        self.figures.append(fig)
        return fig

    def missing(self, caption: str) -> Figure:
        """A figure that could not be drawn: the caption says why."""
        fig = Figure("", caption)
        self.figures.append(fig)
        return fig

    def extend(self, other: "Drawing") -> "Drawing":
        self.figures += other.figures
        self.artefacts += other.artefacts
        return self


def png(fig: MplFigure, dpi: float = DPI, **savefig_kwargs) -> bytes:
    """The PNG bytes of a matplotlib figure (``savefig`` into memory)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **savefig_kwargs)
    return buf.getvalue()


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


def histogram(values, xlabel, marker=None, marker_label=None, bins=25) -> bytes:
    """PNG of a histogram shared by items with distributions (25 bins, as the reference)."""
    fig, ax = subplots(figsize=(4.6, 2.5))
    ax.hist(np.asarray(values).ravel(), bins=bins, color="#2596be", edgecolor="white")
    if marker is not None:
        ax.axvline(marker, color="#b03030", ls="--", label=marker_label)
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Count")
    ax.grid(True, alpha=0.4)
    fig.tight_layout()
    return png(fig)
