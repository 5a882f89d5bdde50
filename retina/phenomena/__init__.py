"""In-silico experiments: stimulus generators and analyses that run on any model mapping stimulus windows to
rates (via :func:`as_responder`) and on the ground-truth circuit's ``simulate``. A system answering a probe with NaN
or inf rates is a :class:`NonFiniteRates` error naming the analysis, the probe and the cells (an analysis had run on and
called nothing)."""
from neurozoo.retina.phenomena.adaptation import (contrast_adaptation, contrast_gain_control, fit_exponential,
                                                  object_motion_sensitivity)
from neurozoo.retina.phenomena.analyses import (latency_coding, motion_anticipation, motion_reversal, paired_flash,
                                       peak_latency, reversing_grating, step_response)
from neurozoo.retina.phenomena.osr import OSRResult, omitted_stimulus_response, plot_osr
from neurozoo.retina.phenomena.responder import NonFiniteRates, as_responder

__all__ = ["as_responder", "NonFiniteRates", "omitted_stimulus_response", "OSRResult", "plot_osr", "step_response",
           "paired_flash", "latency_coding", "reversing_grating", "motion_anticipation", "motion_reversal",
           "peak_latency", "contrast_adaptation", "contrast_gain_control", "object_motion_sensitivity", "fit_exponential"]
