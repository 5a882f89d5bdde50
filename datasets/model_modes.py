"""A model's train/eval mode around work that needs eval mode, shared by every package that runs models (the
bottom layer, so that convrnn, retina and benchmarks can all import it)."""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def eval_mode(model):
    """``model`` in eval mode within (BatchNorm's running statistics, no dropout or noise); the mode it had is
    restored after, also when the work inside raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
