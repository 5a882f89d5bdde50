"""Writing a matplotlib figure: an Agg canvas on the Figure itself, no pyplot, so saving never switches the backend
of the caller's session (a notebook's inline backend) and leaves no figure open."""
from __future__ import annotations

from pathlib import Path


def save_figure(figure, path) -> Path:
    """``figure`` (a ``matplotlib.figure.Figure``) as a PNG at 120 dpi, cropped to its content; written whole or
    not at all (a killed process leaves the previous figure, not half of a new one)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from neurozoo.datasets.json_files import written_whole

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    with written_whole(path) as tmp:
        figure.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    return path
