"""A candidate ground truth tried for issue 14 and not adopted: circuit version 4 with the ON pathway's
summation moved *before* its rectification (a linear ON bipolar filter with a slow rebound lobe), the
depressing OFF -> amacrine -> ON-terminal veto kept, no ON-terminal depression. Prints the numbers quoted in
the README's retina section ("Not the summation after the rectification alone").

    PYTHONPATH=.nz python docs/figures/retina/osr_linear_on.py circuit      # the circuit's OSR and its ablations (s)
    PYTHONPATH=.nz python docs/figures/retina/osr_linear_on.py whitenoise   # models fitted to its white noise (~6 min)
    PYTHONPATH=.nz python docs/figures/retina/osr_linear_on.py flashtrains  # ... and to random flash trains (~20 min)

The ON-OFF cells' pathway per subunit ``s`` (full-field stimuli: every subunit alike):
``drive = relu(h_on * s - k * lowpass(depressing_pool(relu(h_off * s - off_threshold))) - on_threshold)``.
Its parameters came from a search of the pathway alone for the OSR call with the pathways active in at least
15 % of white-noise frames (so that a fit can see them), then checked in the full circuit.
"""
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import signal

import neurozoo.datasets.synthetic_retina as synthetic
from neurozoo.retina.phenomena.osr import omitted_stimulus_response

sys.path.insert(0, str(Path(__file__).parent))
from osr_v4 import flash_movie  # noqa: E402  (same random flash trains as the version-4 check)


@dataclass
class LinearOn:
    off_tau: float = 2.72          # OFF bipolar: gamma(tau) - 0.3 gamma(3 tau), sign-inverted, rectified at:
    off_threshold: float = 0.63
    on_delay: int = 1              # ON bipolar: gamma(on_tau, 3) - on_rebound * gamma(on_tau2, on_order), linear
    on_tau: float = 0.97
    on_rebound: float = 1.32
    on_tau2: float = 5.14
    on_order: float = 3.3
    recovery: float = 3.0          # the amacrine's depressing input synapse: refill (frames) ...
    sensitivity: float = 0.76      # ... and release fraction per unit drive
    amacrine_tau: float = 7.4      # the amacrine's low-pass (frames)
    inhibition: float = 19.4       # amacrine -> ON terminal, subtractive before its threshold
    on_threshold: float = 0.064
    off_weight: float = 0.039      # OFF excitation of the ON-OFF cell
    frozen: float = 0.5            # ablation: the pool held at this availability (no depression)


class LinearOnRetina(synthetic.GroundTruthRetina):
    def __init__(self, pathway: LinearOn = LinearOn(), ablation: str = "", seed: int = 0):
        self.pathway, self.ablation = pathway, ablation
        gain = np.sqrt(4 * np.pi * synthetic.CircuitParams().blur_sd ** 2)
        q = pathway
        off = -(synthetic._gamma_filter(q.off_tau) - 0.3 * synthetic._gamma_filter(3 * q.off_tau))
        on = np.concatenate([np.zeros(q.on_delay), synthetic._gamma_filter(q.on_tau, 3)
                             - q.on_rebound * synthetic._gamma_filter(q.on_tau2, q.on_order)])[:synthetic.N_TAPS]
        self.h_lin_off, self.h_lin_on = (h * gain / np.linalg.norm(h) for h in (off, on))
        super().__init__(seed=seed)

    def osr_pathways(self, stimulus):
        q, s = self.pathway, self.subunits(stimulus).astype(np.float64)
        off = np.maximum(signal.lfilter(self.h_lin_off, 1.0, s, axis=0) - q.off_threshold, 0.0) * (self.ablation != "off")
        on = signal.lfilter(self.h_lin_on, 1.0, s, axis=0) - 1e3 * (self.ablation == "on")
        released = synthetic.pool_release(off, q.recovery, q.sensitivity, q.frozen if self.ablation == "depression" else None)
        amacrine = synthetic._low_pass(released, q.amacrine_tau)
        drive = np.maximum(on - q.inhibition * amacrine - q.on_threshold, 0.0)
        return {"off": off, "on": on, "amacrine": amacrine, "drive": drive, "excitation": drive + q.off_weight * off}


CIRCUIT = LinearOnRetina()
ONOFF = np.flatnonzero(np.array(CIRCUIT.cell_types) == "onoff")


def show(name, result):
    print(f"{name:28s} slopes {result.slope[ONOFF].round(2)} R2 {np.nan_to_num(result.r2[ONOFF]).round(2)} "
          f"min peak ratio {result.peak_ratio[ONOFF].min(1).round(1)} OSR cells {int(result.is_osr[ONOFF].sum())}/6")


def circuit():
    show("circuit", omitted_stimulus_response(CIRCUIT))
    for ablation in ("off", "on", "depression"):
        show(f"circuit without {ablation}", omitted_stimulus_response(LinearOnRetina(ablation=ablation)))
    pathways = CIRCUIT.osr_pathways(synthetic.white_noise(3000, np.random.default_rng(1)).astype(np.float32))
    print("white noise: ON terminal active in %.0f %% of frames, OFF bipolar in %.0f %%"
          % (100 * (pathways["drive"] > 0).mean(), 100 * (pathways["off"] > 0).mean()))


def fitted(path, models=("twosubunit", "ln", "bncnn")):
    from neurozoo.retina.fit import create_model, fit

    for name in models:
        torch.manual_seed(0)
        result = fit(create_model(name, n_cells=CIRCUIT.n_cells), path, progress=False, seed=0)
        print(f"  {name}: best epoch {result.best_epoch}, validation r {result.best_val_correlation:.3f}")
        show(f"{name}", omitted_stimulus_response(result.model.eval()))


def whitenoise():
    with tempfile.TemporaryDirectory() as folder:
        fitted(synthetic.generate_recording(Path(folder) / "wn.h5", "whitenoise", retina=CIRCUIT))


def flashtrains():
    synthetic.make_stimulus = lambda kind, n, rng: flash_movie(n, rng)  # float16 storage via "naturalscene"
    with tempfile.TemporaryDirectory() as folder:
        fitted(synthetic.generate_recording(Path(folder) / "flashes.h5", "naturalscene", n_repeats=4, retina=CIRCUIT))


if __name__ == "__main__":
    {"circuit": circuit, "whitenoise": whitenoise, "flashtrains": flashtrains}[sys.argv[1]]()
