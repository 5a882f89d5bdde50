"""What training reads of an unrolled model's output: its logits per readout step, its answer (a ConvRNN's decoder's)
and the cross-entropy loss of either."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def step_logits(output) -> torch.Tensor:
    """(T, B, K) logits from a model output with ``.logits`` (a plain (B, K) tensor counts as T = 1)."""
    logits = getattr(output, "logits", output)
    return logits.unsqueeze(0) if logits.dim() == 2 else logits


def model_answer(output) -> torch.Tensor:
    """The model's (B, K) answer: ``output.final_logits`` (a ConvRNN's decoder: max-confidence / threshold for
    *_tmaxconf / *_dthresh, the last step otherwise); the last step of an output without one.

    The original's model_func returns only the decoded logits (models/model_func.py lines 192-209: ``logits =
    temporal_decoder(...)``, ``assert len(logits.shape) == 2``), so its loss and its top-1 see the decoder's answer."""
    final = getattr(output, "final_logits", None)
    return final if final is not None else step_logits(output)[-1]


def unrolled_loss(output, target: torch.Tensor, mode: str = "final", first_step: int = 0,
                  label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of the model's answer (``model_answer``), or its mean over every step's logits from
    ``first_step`` on. ``output``: a model output or its (T, B, K) logits."""
    logits = step_logits(output)
    if mode == "final" or logits.shape[0] == 1:
        return F.cross_entropy(model_answer(output).float(), target, label_smoothing=label_smoothing)
    steps = logits[min(first_step, logits.shape[0] - 1):].float()
    return F.cross_entropy(steps.flatten(0, 1), target.repeat(steps.shape[0]), label_smoothing=label_smoothing)
