"""Shared checks of figure functions: print sizes and fonts of every matplotlib figure they
draw, and the PNG images of a Drawing (names, bytes, physical size)."""
import io

import matplotlib.text

from cryovalid.figures import common
from cryovalid.results import Image

MAX_HEIGHT_MM = 120.0  # a figure printed at its size stays under 12 cm (the report's others)


class FigureCapture:
    """Keep every matplotlib figure the given figure modules draw (through their ``subplots``
    and, where they have it, ``new_figure``), for checking their print sizes."""

    def __init__(self, monkeypatch, *modules):
        self.figs = []
        for mod in (*modules, common):
            monkeypatch.setattr(mod, "subplots", self._wrap_sub(getattr(mod, "subplots")))
        for mod in modules:
            if hasattr(mod, "new_figure"):
                monkeypatch.setattr(mod, "new_figure", self._wrap_new(mod.new_figure))

    def _wrap_sub(self, real):
        def keep(*a, **k):
            fig, axes = real(*a, **k)
            self.figs.append(fig)
            return fig, axes
        return keep

    def _wrap_new(self, real):
        def keep(*a, **k):
            fig = real(*a, **k)
            self.figs.append(fig)
            return fig
        return keep

    def check_print_sizes(self):
        """Each figure at most PRINT_WIDTH_IN wide and MAX_HEIGHT_MM tall, every text at least
        MIN_FONT_PT."""
        assert self.figs
        for fig in self.figs:
            w, h = fig.get_size_inches()
            assert w <= common.PRINT_WIDTH_IN + 1e-9, (w, h)
            assert h * 25.4 <= MAX_HEIGHT_MM, (w, h)
            texts = [t for t in fig.findobj(matplotlib.text.Text)
                     if t.get_visible() and t.get_text().strip()]
            assert texts
            small = [(t.get_text(), t.get_fontsize()) for t in texts
                     if t.get_fontsize() < common.MIN_FONT_PT]
            assert not small, small


def png_checks(drawing, names):
    """Figures named as expected, each with PNG bytes of a printable physical size."""
    from PIL import Image as PILImage

    assert [f.path for f in drawing.figures] == [f"figures/{n}" for n in names]
    images = {a.name: a.png for a in drawing.artefacts if isinstance(a, Image)}
    for f in drawing.figures:
        data = images[f.path]
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        with PILImage.open(io.BytesIO(data)) as im:
            dpi = im.info["dpi"][0]
            w_in, h_in = im.size[0] / dpi, im.size[1] / dpi
        assert w_in <= common.PRINT_WIDTH_IN + 0.01 and h_in * 25.4 <= MAX_HEIGHT_MM, f.path
        assert f.caption
