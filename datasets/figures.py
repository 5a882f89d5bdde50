"""Writing a matplotlib figure: an Agg canvas on the Figure itself, no pyplot, so saving never switches the backend
of the caller's session (a notebook's inline backend) and leaves no figure open."""
from __future__ import annotations

from pathlib import Path


def save_figure(figure, path) -> Path:
    """``figure`` (a ``matplotlib.figure.Figure``) as a PNG at 120 dpi, cropped to its content."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    return path
