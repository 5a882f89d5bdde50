"""The torch device a user names: ``auto``, the one rule of every command and Python API that takes a device.

Here at the bottom of the packages (tests/test_layers.py) so that each may resolve ``auto`` itself: the commands
(``leaderboard.cli``), the torchrun entry and the trainer (``convrnn.training.distributed``, which imports it), and the
retina API (``retina.fit``'s fit, ``predict`` and ``evaluate``, the retina benchmarks' ``score``), which may not import
``convrnn``. torch is imported when a name is resolved, not with this module."""
from __future__ import annotations


def auto_device(name: str) -> str:
    """``--device``'s (or a Python caller's ``device=``) ``auto``: ``cuda`` where torch sees a GPU, else ``cpu``
    (what the command or call then uses and records); any other name as given."""
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name
