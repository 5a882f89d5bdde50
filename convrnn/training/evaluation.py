"""Top-k hits and the one evaluation loop of the suite (``Trainer.evaluate``, the ``imagenet.val`` benchmark): the
sums of the model's answer's loss and hits, and the hits of each readout step."""
from __future__ import annotations

import contextlib
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from neurozoo.convrnn.training.loss import model_answer, step_logits


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks=(1, 5)) -> List[torch.Tensor]:
    """Number of samples whose target is among the top-k classes, for each k (k capped at K)."""
    top = logits.topk(min(max(ks), logits.shape[-1]), dim=-1).indices
    hits = top.eq(target.unsqueeze(-1))
    return [hits[:, :k].any(-1).sum() for k in ks]


@torch.no_grad()
def evaluation_sums(model: nn.Module, batches, device, first_readout_step: int = 0, autocast=contextlib.nullcontext,
                    on_batch=None) -> Dict[str, Optional[torch.Tensor]]:
    """The one evaluation loop of the suite (``Trainer.evaluate``, the ``imagenet.val`` benchmark): over ``batches``
    of ``(images, target)`` already on ``device``, the float64 sums ``answer`` = (cross-entropy, top-1 hits, top-5
    hits, n) of the model's answer (:func:`model_answer`) and ``steps`` = (top-1, top-5 hits) per readout step from
    ``first_readout_step`` on (``step_logits``; one row for a feedforward model's logits; None without batches).
    ``on_batch()`` is called after each batch (a progress bar). The caller puts the model in eval mode."""
    answer = torch.zeros(4, dtype=torch.float64, device=device)
    steps = None
    for images, target in batches:
        with autocast():
            output = model(images)
        final = model_answer(output).float()
        top1, top5 = topk_correct(final, target)
        answer += torch.stack([F.cross_entropy(final, target, reduction="sum").double(), top1.double(), top5.double(),
                               torch.tensor(float(len(target)), dtype=torch.float64, device=device)])
        logits = step_logits(output)
        hits = torch.stack([torch.stack(topk_correct(step.float(), target)).double()
                            for step in logits[min(first_readout_step, logits.shape[0] - 1):]])
        steps = hits if steps is None else steps + hits
        if on_batch is not None:
            on_batch()
    return {"answer": answer, "steps": steps}
