"""Two candidate ground truths tried for issue 14 and not adopted. Prints the numbers quoted in
docs/osr-investigation.md ("Not the summation after the rectification alone").

* ``depressing`` (default): circuit version 4 with the ON pathway's summation moved *before* its rectification
  (a linear ON bipolar filter with a slow rebound lobe), the depressing OFF -> amacrine -> ON-terminal veto
  kept, no ON-terminal depression.
* ``linear``: the veto made of linear blocks too -- a transient (biphasic) OFF filter, rectified, low-passed --
  no depression, no OFF excitation, and the ON-OFF cells' rate read from their excitation without the
  white-noise calibration (which saturates their responses to the train's flashes): ``300 tanh(g e / 300)``,
  ``g`` putting the 10-frame train's burst at 150 spikes/s.

    PYTHONPATH=.nz python docs/figures/retina/osr_linear_on.py circuit [linear]      # OSR and ablations (s)
    PYTHONPATH=.nz python docs/figures/retina/osr_linear_on.py whitenoise [linear]   # models fitted to its white noise
    PYTHONPATH=.nz python docs/figures/retina/osr_linear_on.py flashtrains [linear]  # ... to random flash trains

The ON-OFF cells' pathway per subunit ``s`` (full-field stimuli: every subunit alike):
``drive = relu(h_on * s - k * lowpass(depressing_pool(relu(h_off * s - off_threshold))) - on_threshold)``.
Its parameters came from a search of the pathway alone for the OSR call with the pathways active in at least
15 % of white-noise frames (so that a fit can see them), then checked in the full circuit.
"""
import dataclasses
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


#: the ``linear`` candidate: the same ON pathway form, a linear transient veto (no depression, no OFF excitation)
LINEAR = LinearOn(on_delay=0, on_tau=2.32, on_rebound=1.75, on_tau2=5.33, on_order=2.26, amacrine_tau=6.42,
                  inhibition=19.6, on_threshold=0.002, off_weight=0.0)
VETO_FILTER = (1.56, 6.1, 0.926, 0.955)  # linear veto: gamma(tau1) - dc gamma(tau2), sign-inverted, rectified at


class LinearOnRetina(synthetic.GroundTruthRetina):
    def __init__(self, pathway: LinearOn = LinearOn(), ablation: str = "", seed: int = 0, linear: bool = False,
                 output_gain=None):
        self.pathway, self.ablation, self.linear, self.output_gain = pathway, ablation, linear, output_gain
        gain = np.sqrt(4 * np.pi * synthetic.CircuitParams().blur_sd ** 2)
        q = pathway
        off = -(synthetic._gamma_filter(q.off_tau) - 0.3 * synthetic._gamma_filter(3 * q.off_tau))
        on = np.concatenate([np.zeros(q.on_delay), synthetic._gamma_filter(q.on_tau, 3)
                             - q.on_rebound * synthetic._gamma_filter(q.on_tau2, q.on_order)])[:synthetic.N_TAPS]
        tau1, tau2, dc, _ = VETO_FILTER
        veto = -(synthetic._gamma_filter(tau1) - dc * synthetic._gamma_filter(tau2))
        self.h_lin_off, self.h_lin_on, self.h_veto = (synthetic._normalized(h, gain) for h in (off, on, veto))
        super().__init__(seed=seed)
        if linear and output_gain is None:
            movie, _, _ = synthetic.flash_train(10)
            self.output_gain = 150.0 / (self.osr_pathways(movie)["excitation"] @ self.w_osr).max()

    def rates(self, stimulus):
        rates = super().rates(stimulus)
        if self.linear:  # the ON-OFF cells' rate straight from their excitation (module docstring)
            onoff = np.array(self.cell_types) == "onoff"
            excitation = (self.osr_pathways(stimulus)["excitation"] @ self.w_osr)[:, onoff].T
            rates[onoff] = 300 * np.tanh(self.output_gain * excitation / 300) + 0.5
        return rates

    def osr_pathways(self, stimulus):
        q, s = self.pathway, self.subunits(stimulus).astype(np.float64)
        keep_off = self.ablation != "off"
        off = np.maximum(signal.lfilter(self.h_lin_off, 1.0, s, axis=0) - q.off_threshold, 0.0) * keep_off
        on = signal.lfilter(self.h_lin_on, 1.0, s, axis=0) - 1e3 * (self.ablation == "on")
        if self.linear:
            released = np.maximum(signal.lfilter(self.h_veto, 1.0, s, axis=0) - VETO_FILTER[3], 0.0) * keep_off
        else:
            released = synthetic.pool_release(off, q.recovery, q.sensitivity,
                                              q.frozen if self.ablation == "depression" else None)
        amacrine = synthetic._low_pass(released, q.amacrine_tau)
        drive = np.maximum(on - q.inhibition * amacrine - q.on_threshold, 0.0)
        return {"off": off, "on": on, "amacrine": amacrine, "drive": drive, "excitation": drive + q.off_weight * off}


KIND = sys.argv[2] if len(sys.argv) > 2 else "depressing"
CIRCUIT = LinearOnRetina(LINEAR, linear=True) if KIND == "linear" else LinearOnRetina()
ONOFF = np.flatnonzero(np.array(CIRCUIT.cell_types) == "onoff")


def show(name, result):
    print(f"{name:28s} slopes {result.slope[ONOFF].round(2)} R2 {np.nan_to_num(result.r2[ONOFF]).round(2)} "
          f"min peak ratio {np.fmin.reduce(result.peak_ratio[ONOFF], axis=1).round(1)} OSR cells {int(result.is_osr[ONOFF].sum())}/6")


def circuit():
    show("circuit", omitted_stimulus_response(CIRCUIT))
    for ablation in ("off", "on") + (("depression",) if KIND != "linear" else ()):
        ablated = LinearOnRetina(CIRCUIT.pathway, ablation, linear=CIRCUIT.linear, output_gain=CIRCUIT.output_gain)
        show(f"circuit without {ablation}", omitted_stimulus_response(ablated))
    if KIND == "linear":  # the veto's low-pass after its rectification is what times the burst
        for tau in (1.01, 3.0):
            short = LinearOnRetina(dataclasses.replace(LINEAR, amacrine_tau=tau), linear=True)
            show(f"veto low-pass {tau:g} frames", omitted_stimulus_response(short))
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
