"""An embedded ground-truth retina: a small mechanistic circuit and the recordings it makes.

Interface (used by retina.fit, retina.phenomena and the benchmarks; keep stable):

* ``GroundTruthRetina(seed=0)`` -- the circuit; ``.simulate(stimulus, seed=None, trials=None)`` with
  ``stimulus`` ``(T, 50, 50)`` in contrast units (0 = grey background, white noise has sd 1) returns
  the expected firing rates ``(n_cells, T)`` in spikes/s when ``trials`` is None, else
  ``(rates, counts)`` with Poisson spike counts ``(trials, n_cells, T)`` per 10 ms frame.
* ``simulate(stimulus, seed=None, trials=None)`` -- the same on the default circuit.
* ``load_embedded_retina(kind="whitenoise"|"naturalscene"|"oms-whitenoise"|"oms-naturalscene"|"oms-gratingmotion")
  -> Path`` -- a deep-retina HDF5 file (see :mod:`datasets.retina_h5`), generated on first use and cached under
  ``$NEUROZOO_CACHE`` (default ``~/.cache/neurozoo``) in ``retina/``. ``oms-whitenoise``, ``oms-naturalscene``
  (natural scenes with independently moving objects, :func:`object_scene`) and ``oms-gratingmotion`` (the OMS probe's
  jittered gratings at other positions, phases and paths, :func:`grating_motion`) are recorded from the separate
  object-motion circuit (:mod:`datasets.oms_retina`), whose version is part of their cache key.
* ``flash_train(period, ...)`` -- the omitted-stimulus protocol stimulus (full field).

The circuit, per frame (100 Hz):

1. Photoreceptor/bipolar spatial blur (Gaussian, sd 1.2 px) sampled on a 17 x 17 grid of subunits.
2. Bipolar pathways per subunit, each with its own temporal filter (40 taps) and rectified: an OFF type
   (biphasic, sign-inverted) and an ON type with the OFF kinetics mirrored (the inputs of the OFF and ON cells).
3. Adaptation: each bipolar terminal is a depleting synapse (vesicle pool ``u``: recovers with a
   time constant of 40 frames, depleted in proportion to release), so sustained contrast lowers the gain.
4. Amacrine inhibition: a wide-field amacrine cell per ganglion cell pools release over a broad Gaussian (the ON
   and OFF cells' bipolars for the ON and OFF cells, the ON-OFF cells' own inputs for the ON-OFF cells) and
   subtracts it, low-passed and delayed, from the ganglion input, in proportion to the cell's excitation
   (white-noise means): object-motion sensitivity. Divisive gain control: the ganglion input is divided by
   ``1 + 0.5 * (its excitation low-passed over 50 frames, relative to white noise)`` -- a contrast step's
   response halves within a few 100 ms.
5. Ganglion cells (12 at different positions: 3 OFF, 3 ON, 6 ON-OFF) sum their subunits with Gaussian weights
   and fire as an inhomogeneous Poisson process with rate ``r_max * softplus(.)`` (saturating smoothly at
   300 spikes/s; ``r_max`` sets about 25 spikes/s under white noise).

The OSR (the ON-OFF cells; :meth:`GroundTruthRetina.osr_pathways`). Rectified ON and OFF pathways per subunit
converge nonlinearly at the ON terminal, as in the reduced model of Tanaka et al. (2019):

* a fast, transient OFF bipolar (``osr_off_tau``), rectified at 1 white-noise sd: it fires at each dark
  flash's onset (2-4 frames);
* a fast, transient ON bipolar (1 frame, then a difference of gammas), rectified at a high threshold
  (``osr_on_threshold``, 1.75 sd): it fires at each flash's offset (4-7 frames after the onset);
* the ON terminal **sums** its bipolar's release (low-pass, 23 frames), so after a train its level is about
  proportional to the flash rate (``summed`` ~ 1 / period);
* an amacrine cell driven by the OFF bipolar through a **depressing** synapse (a vesicle pool that a flash
  empties and that refills with 7 frames), low-passed with 7 frames, inhibits the ON terminal (subtractive,
  before its threshold). Each flash releases what the pool refilled since the previous one, which offsets
  the summation of the inhibition: its peak just after the last flash is the same at every period;
* during a train each flash's inhibition vetoes the terminal; after the omission the inhibition decays and the
  terminal escapes when ``I0 exp(-t / 7)`` falls below the (slowly decaying) ON level ~ 1 / period:
  ``t* ~ tau_eff ln(period)`` with ``tau_eff = 1 / (1/7 - 1/23) ~ 10`` frames, nearly linear in the period over
  6-16 frames with a slope of about 1;
* the terminal releases through its own depressing pool (``osr_terminal_*``): a brief burst (the ON-OFF cell's
  excitation, with a small depressed OFF input, ``osr_off_weight``).

Measured (:mod:`retina.phenomena.osr`, periods 6-16): slope of the latency from the last flash against the period
1.00 in every ON-OFF cell, R^2 0.96-0.97, the burst's centroid 6.1-7.9 frames after the omitted flash (12-22 from
the last flash: a 40-frame window ending at the burst holds the last two flashes at every period), its peak
6-2800 times the train's per-flash responses. Removing the OFF pathway (``osr_off_gain=0``: no veto, the
terminal answers every flash; slope 0.17), the ON pathway (``osr_on_gain=0``: no burst) or the depression
(``osr_amacrine_depression=False``: the pool frozen at its mean during the trains, 0.34; the inhibition then
grows at short periods and the slope falls to 0.61) abolishes the OSR (tests/test_osr.py). Under white noise
the ON terminal releases in 26 % of a subunit's frames, but above 10 % of its OSR burst's size (pooled over an
ON-OFF cell's receptive field) in 1-4 % of frames: the rectified ON bipolar's threshold and the inhibition keep
white noise from recruiting the rebound; it still gives most of the ON-OFF cells' mean white-noise excitation.
The ON-OFF cells hardly answer the small texture jitter of the object-motion stimulus, and after a contrast
increase they are suppressed for ~40 frames before they adapt (fast inhibition, slow ON summation).
(Version 3 made the period dependence with a slow terminal: its burst came 30-39 frames after the last flash,
beyond what a 40-frame model window can time; version 2 made the OSR with one resonant ON filter before a
threshold, which an LN model reproduces. See docs/retina.md and docs/osr-investigation.md.)
"""
from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np  # scipy is imported where used: `zoo fit` reads a cached recording without it (0.9 s)

from neurozoo.datasets.cache import cache_dir, generated, recorded_sha256
from neurozoo.datasets.provenance import sha256_file
from neurozoo.datasets.retina_stimulus_class import EMBEDDED_CLASSES

FRAME_RATE = 100  # Hz: one frame = 10 ms
FRAME_SIZE = 50
N_TAPS = 40
VERSION = 4  # bump when the circuit or the recordings change (part of the cache key)


def _gamma_filter(tau: float, n: int = 3, taps: int = N_TAPS) -> np.ndarray:
    k = np.arange(taps, dtype=float)
    h = (k / tau) ** n * np.exp(-k / tau)
    return h / h.sum()


@dataclass
class CircuitParams:
    blur_sd: float = 1.2
    grid_stride: int = 3
    # temporal filters (frames): OFF biphasic (sign-inverted), ON = the OFF kinetics mirrored
    off_tau: Tuple[float, float] = (2.5, 7.0)
    off_weights: Tuple[float, float] = (1.0, 0.6)
    on_threshold: float = 1.0
    off_threshold: float = 1.0
    # depleting synapse
    recovery_frames: float = 40.0
    depletion: float = 0.02
    # wide-field amacrine
    amacrine_sd: float = 10.0
    amacrine_tau: float = 4.0
    amacrine_delay: int = 2
    amacrine_weight: float = 1.0  # relative to the cell's excitation (white-noise means)
    # divisive contrast gain control of the ganglion input by its own recent excitation
    gain_control: float = 0.5
    gain_control_tau: float = 50.0
    # --- the omitted-stimulus circuit of the ON-OFF cells (module docstring, "The OSR") ---
    osr_off_tau: float = 1.14          # fast transient OFF bipolar: gamma(tau) - surround * gamma(3 tau), sign-inverted
    osr_off_surround: float = 0.3
    osr_off_threshold: float = 1.0     # its rectification (white-noise sd units)
    osr_on_delay: int = 1              # fast transient ON bipolar: 1 frame, then gamma(tau) - gamma(tau2) ...
    osr_on_tau: float = 0.5
    osr_on_tau2: float = 1.0
    osr_on_order: int = 2              # ... of this order
    osr_on_threshold: float = 1.75     # its rectification: high, white noise rarely crosses it
    osr_on_summation_tau: float = 23.0  # the ON terminal sums its bipolar's release (low-pass, frames)
    osr_inhibition: float = 11.0       # OFF-driven amacrine -> ON terminal (subtractive, before its threshold)
    osr_amacrine_tau: float = 7.0      # the amacrine's low-pass (frames)
    osr_amacrine_recovery: float = 7.0  # its depressing input synapse: pool refill time (frames) ...
    osr_amacrine_sensitivity: float = 1.0  # ... releasing 1 - exp(-sensitivity * OFF drive) of the pool a frame
    osr_amacrine_depression: bool = True   # False: the pool frozen at osr_static_availability
    osr_static_availability: float = 0.34  # the pool's mean during the OSR trains (periods 6-16)
    osr_terminal_threshold: float = 0.0  # of the ON terminal, after the amacrine inhibition
    osr_terminal_recovery: float = 150.0  # the ON terminal's own depressing pool (a brief burst): refill ...
    osr_terminal_sensitivity: float = 1.5  # ... and release fraction per unit drive
    osr_terminal_depression: bool = True  # False: the pool held full
    osr_off_weight: float = 0.01       # OFF excitation of the ON-OFF cell relative to the ON terminal's
    osr_off_recovery: float = 40.0     # its depressing synapse onto the ON-OFF cell: refill (frames) ...
    osr_off_sensitivity: float = 1.0   # ... and release fraction per unit drive
    osr_off_depression: bool = True    # False: the pool held full
    osr_off_gain: float = 1.0          # ablations: 0 removes the fast OFF pathway (its excitation and inhibition)
    osr_on_gain: float = 1.0           # 0 removes the ON pathway
    # ganglion
    rf_sd: Tuple[float, float] = (2.5, 4.0)
    cell_types: Tuple[str, ...] = ("off",) * 3 + ("on",) * 3 + ("onoff",) * 6
    mean_rate: float = 25.0  # spikes/s under white noise (sets the output scale)
    sharpness: float = 3.0  # ganglion nonlinearity slope in units of the input's white-noise sd
    max_rate: float = 300.0  # spikes/s: smooth saturation of the ganglion output


def _normalized(h: np.ndarray, gain: float) -> np.ndarray:
    return h * gain / np.linalg.norm(h)


def _low_pass(x: np.ndarray, tau: float) -> np.ndarray:
    a = np.exp(-1.0 / tau)
    from scipy import signal
    return signal.lfilter([1 - a], [1, -a], x, axis=0)


def depleting_synapse(drive: np.ndarray, recovery_frames: float, depletion: float) -> np.ndarray:
    """Release = drive * u; the availability u recovers to 1 with ``recovery_frames`` and is used up in
    proportion to release (``depletion`` per unit). ``drive``: ``(T, ...)``."""
    u = np.ones(drive.shape[1:])
    out = np.empty_like(drive)
    rec = 1.0 / recovery_frames
    for t in range(len(drive)):
        r = drive[t] * u
        out[t] = r
        u += rec * (1.0 - u) - depletion * r
        np.clip(u, 0.0, 1.0, out=u)
    return out


def pool_release(drive: np.ndarray, recovery_frames: float, sensitivity: float,
                 frozen: Optional[float] = None) -> np.ndarray:
    """A depressing synapse that releases a fraction ``1 - exp(-sensitivity * drive)`` of its vesicle pool per
    frame (a strong drive empties it) and refills with ``recovery_frames``: the release per event is the
    pool refilled since the last event. ``frozen``: the pool held at that value (no depression).
    ``drive``: ``(T, ...)``, non-negative."""
    fraction = -np.expm1(-sensitivity * drive)
    if frozen is not None:
        return frozen * fraction
    pool = np.ones(drive.shape[1:])
    out = np.empty_like(drive)
    refill = 1.0 - np.exp(-1.0 / recovery_frames)
    for t in range(len(drive)):
        out[t] = pool * fraction[t]
        pool += refill * (1.0 - pool) - out[t]
    return out


class SpikingCircuit:
    """The output stage a ground-truth circuit shares (this module's and :mod:`datasets.oms_retina`'s): rates from its
    ``ganglion_input`` through its ``_nonlinearity`` and gain ``r_max``, saturating smoothly at ``params.max_rate``;
    Poisson spike counts per frame; the stimulus's shape checked."""

    def rates(self, stimulus: np.ndarray) -> np.ndarray:
        """Expected firing rates (spikes/s), ``(n_cells, T)``."""
        self._check(stimulus)
        drive = self.r_max[:, None] * self._nonlinearity(self.ganglion_input(stimulus))
        return (self.params.max_rate * np.tanh(drive / self.params.max_rate)).astype(np.float32)

    def simulate(self, stimulus: np.ndarray, seed: Optional[int] = None, trials: Optional[int] = None):
        """Rates ``(n_cells, T)``; with ``trials``: ``(rates, counts (trials, n_cells, T))`` Poisson per frame."""
        rates = self.rates(stimulus)
        if trials is None:
            return rates
        rng = np.random.default_rng(seed)
        counts = rng.poisson(rates[None] / FRAME_RATE, size=(trials,) + rates.shape).astype(np.int16)
        return rates, counts

    def _check(self, stimulus):
        shape = np.shape(stimulus)
        if len(shape) != 3 or shape[1:] != (FRAME_SIZE, FRAME_SIZE):
            from neurozoo.datasets.errors import DataError

            raise DataError(f"stimulus must have shape (T, {FRAME_SIZE}, {FRAME_SIZE}); got {shape}")


class GroundTruthRetina(SpikingCircuit):
    """The embedded circuit (see module docstring). Deterministic given ``seed``."""

    def __init__(self, seed: int = 0, params: Optional[CircuitParams] = None):
        self.seed = seed
        self.params = p = params or CircuitParams()
        rng = np.random.default_rng(seed)
        self.grid = np.arange(p.grid_stride // 2, FRAME_SIZE, p.grid_stride)
        gy, gx = np.meshgrid(self.grid, self.grid, indexing="ij")
        self.subunit_xy = np.stack([gy.ravel(), gx.ravel()], 1).astype(float)

        # unit variance of each pathway's drive under unit-variance pixel white noise
        spatial_gain = np.sqrt(4 * np.pi * p.blur_sd ** 2)
        self.h_off = _normalized(-self._biphasic(p.off_tau, p.off_weights), spatial_gain)
        self.h_osr_off = _normalized(-(_gamma_filter(p.osr_off_tau) - p.osr_off_surround * _gamma_filter(3 * p.osr_off_tau)),
                                     spatial_gain)
        on = _gamma_filter(p.osr_on_tau, p.osr_on_order) - _gamma_filter(p.osr_on_tau2, p.osr_on_order)
        self.h_osr_on = _normalized(np.concatenate([np.zeros(p.osr_on_delay), on])[:N_TAPS], spatial_gain)

        n = len(p.cell_types)
        self.cell_types = list(p.cell_types)
        # positions: jittered around a ring and the centre, all well inside the frame
        angles = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(-0.3, 0.3, n)
        radius = rng.uniform(4, 11, n)
        self.positions = np.stack([25 + radius * np.sin(angles), 25 + radius * np.cos(angles)], 1)
        self.rf_sd = rng.uniform(*p.rf_sd, n)
        d2 = ((self.subunit_xy[:, None, :] - self.positions[None]) ** 2).sum(-1)
        w = np.exp(-d2 / (2 * self.rf_sd ** 2))
        w /= w.sum(0, keepdims=True)
        types = np.array(self.cell_types)
        self.w_on, self.w_off = w * (types == "on"), w * (types == "off")
        self.w_osr = w * (types == "onoff")
        wa = np.exp(-d2 / (2 * p.amacrine_sd ** 2))
        self.w_amacrine = wa / wa.sum(0, keepdims=True)
        self.amacrine_filter = np.concatenate([np.zeros(p.amacrine_delay), _gamma_filter(p.amacrine_tau, n=1, taps=20)])
        self.offset = np.zeros(n)
        self.scale = np.ones(n)
        self.excitation_scale = np.ones(n)
        self.inhibition_scale = np.ones(n)
        self.r_max = np.ones(n)
        self._blurred: Optional[Tuple[np.ndarray, np.ndarray]] = None  # (stimulus, its subunits): _blurred_once
        self._calibrate()

    @property
    def n_cells(self) -> int:
        return len(self.cell_types)

    def _biphasic(self, taus, weights) -> np.ndarray:
        return weights[0] * _gamma_filter(taus[0]) - weights[1] * _gamma_filter(taus[1])

    def _calibrate(self):
        """Fix each cell's input offset/scale and output gain from a fixed white-noise run."""
        rng = np.random.default_rng(10_000 + self.seed)
        stim = white_noise(3000, rng).astype(np.float32)
        with self._blurred_once(stim):
            excitation, pooled = self._excitation(stim)
            self.excitation_scale = excitation[200:].mean(0) + 1e-9
            # the wide-field inhibition in proportion to each cell's own excitation (white noise, means)
            self.inhibition_scale = self.excitation_scale / (pooled[200:].mean(0) + 1e-9)
            g = self.ganglion_input(stim)[:, 200:]
        self.offset = g.mean(1)
        self.scale = g.std(1) + 1e-9
        base = self._nonlinearity(g)
        self.r_max = self.params.mean_rate / base.mean(1)  # set before saturation (a small correction)

    # ---- stages -------------------------------------------------------------------------------
    def subunits(self, stimulus: np.ndarray) -> np.ndarray:
        """Blurred stimulus at the subunit grid: ``(T, n_subunits)``."""
        if self._blurred is not None and self._blurred[0] is stimulus:
            return self._blurred[1]
        from scipy import ndimage
        blurred = ndimage.gaussian_filter(np.asarray(stimulus, np.float32), (0, self.params.blur_sd, self.params.blur_sd),
                                          mode="nearest", truncate=3.0)
        return blurred[:, self.grid][:, :, self.grid].reshape(len(stimulus), -1)

    def bipolar(self, stimulus: np.ndarray):
        """Rectified bipolar drive before the synapse, ``(T, n_subunits)`` each: ON (the OFF kinetics mirrored)
        and OFF, the inputs of the ON and OFF cells."""
        s = self.subunits(stimulus).astype(np.float64)
        from scipy import signal
        off = signal.lfilter(self.h_off, 1.0, s, axis=0)
        p = self.params
        return np.maximum(-off - p.on_threshold, 0.0), np.maximum(off - p.off_threshold, 0.0)

    def synapse(self, drive: np.ndarray) -> np.ndarray:
        """Depleting synapse of the ON and OFF cells' bipolar terminals."""
        return depleting_synapse(drive, self.params.recovery_frames, self.params.depletion)

    def osr_pathways(self, stimulus: np.ndarray) -> dict:
        """The ON-OFF cells' circuit per subunit, ``(T, n_subunits)`` each: ``off`` (fast transient OFF bipolar,
        rectified), ``on`` (fast transient ON bipolar, rectified at a high threshold), ``summed`` (its release
        summed at the ON terminal), ``amacrine`` (the OFF bipolar's depressed, low-passed release), ``drive``
        (the summed ON level minus the amacrine's inhibition, rectified), ``terminal`` (the ON terminal's release
        through its depressing pool) and ``excitation`` (the ON-OFF cell's input per subunit: the terminal plus
        a small depressed OFF release)."""
        p = self.params
        s = self.subunits(stimulus).astype(np.float64)
        from scipy import signal
        off = p.osr_off_gain * np.maximum(signal.lfilter(self.h_osr_off, 1.0, s, axis=0) - p.osr_off_threshold, 0.0)
        on = p.osr_on_gain * np.maximum(signal.lfilter(self.h_osr_on, 1.0, s, axis=0) - p.osr_on_threshold, 0.0)
        summed = _low_pass(on, p.osr_on_summation_tau)
        released = pool_release(off, p.osr_amacrine_recovery, p.osr_amacrine_sensitivity,
                                None if p.osr_amacrine_depression else p.osr_static_availability)
        amacrine = _low_pass(released, p.osr_amacrine_tau)
        drive = np.maximum(summed - p.osr_inhibition * amacrine - p.osr_terminal_threshold, 0.0)
        terminal = pool_release(drive, p.osr_terminal_recovery, p.osr_terminal_sensitivity,
                                None if p.osr_terminal_depression else 1.0)
        off_release = pool_release(off, p.osr_off_recovery, p.osr_off_sensitivity,
                                   None if p.osr_off_depression else 1.0)
        return {"off": off, "on": on, "summed": summed, "amacrine": amacrine, "drive": drive, "terminal": terminal,
                "excitation": p.osr_off_weight * off_release + terminal}

    def _excitation(self, stimulus):
        """Each cell's excitation and the release its wide-field amacrine pools, ``(T, n_cells)`` each: the ON
        and OFF cells' bipolars for the ON and OFF cells, the ON-OFF cells' own inputs for the ON-OFF cells."""
        with self._blurred_once(stimulus):
            on, off = self.bipolar(stimulus)
            rel_on, rel_off = self.synapse(on), self.synapse(off)
            excitation = rel_on @ self.w_on + rel_off @ self.w_off
            pooled = (rel_on + rel_off) @ self.w_amacrine
            if self.w_osr.any():
                onoff = self.w_osr.any(0)
                osr = self.osr_pathways(stimulus)["excitation"]
                excitation = excitation + osr @ self.w_osr
                pooled[:, onoff] = osr @ self.w_amacrine[:, onoff]
        return excitation, pooled

    @contextmanager
    def _blurred_once(self, stimulus: np.ndarray):
        """Inside the block, :meth:`subunits` of ``stimulus`` (this very array) is blurred once and reused: the ON
        and OFF bipolars and the ON-OFF cells' pathways each blurred it, and the calibration ran them twice (4 blurs
        of 3000 frames, ~0.6 of its 1.6 CPU-s). Numbers unchanged: the same blur, computed once."""
        outer = self._blurred
        if outer is None or outer[0] is not stimulus:
            self._blurred = None
            self._blurred = (stimulus, self.subunits(stimulus))
        try:
            yield
        finally:
            self._blurred = outer

    def ganglion_input(self, stimulus: np.ndarray) -> np.ndarray:
        p = self.params
        excitation, pooled = self._excitation(stimulus)
        from scipy import signal
        inhibition = signal.lfilter(self.amacrine_filter, 1.0, pooled, axis=0)
        a = np.exp(-1.0 / p.gain_control_tau)
        recent = signal.lfilter([1 - a], [1, -a], excitation / self.excitation_scale, axis=0)
        return ((excitation - p.amacrine_weight * self.inhibition_scale * inhibition) / (1.0 + p.gain_control * recent)).T  # (cells, T)

    def _nonlinearity(self, g: np.ndarray) -> np.ndarray:
        z = (g - self.offset[:, None]) / self.scale[:, None]
        return np.logaddexp(0.0, self.params.sharpness * z - 2.0)


_DEFAULT: Optional[GroundTruthRetina] = None


def default_retina() -> GroundTruthRetina:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = GroundTruthRetina(seed=0)
    return _DEFAULT


def simulate(stimulus, seed: Optional[int] = None, trials: Optional[int] = None):
    """Run the default embedded circuit on any stimulus ``(T, 50, 50)`` (see ``GroundTruthRetina.simulate``)."""
    return default_retina().simulate(stimulus, seed=seed, trials=trials)


def flash_train(period: int, n_flashes: int = 8, flash_frames: int = 2, intensity: float = -2.0,
                pre: int = 60, post: int = 60) -> Tuple[np.ndarray, int, int]:
    """Full-field flash train followed by one omitted flash: ``(stimulus, last_flash_onset, omitted_onset)``."""
    T = pre + n_flashes * period + post
    stim = np.zeros((T, FRAME_SIZE, FRAME_SIZE), np.float32)
    onsets = pre + period * np.arange(n_flashes)
    for t in onsets:
        stim[t:t + flash_frames] = intensity
    return stim, int(onsets[-1]), int(onsets[-1] + period)


# ---- stimuli and recordings -------------------------------------------------------------------------
#: the embedded recordings (``zoo fit MODEL --data embedded:KIND``) and what ``zoo list`` says of each
DESCRIPTIONS = {
    "whitenoise": "embedded default: the ground-truth retina circuit's 12 ganglion cells under 2 px white noise, "
                  "24000 training frames at 100 Hz and 8 repeats of 1500 test frames (deep-retina HDF5), generated locally",
    "naturalscene": "embedded default: the same circuit under jittered natural images, same sizes, generated locally",
    "oms-whitenoise": "embedded: the object-motion circuit's 6 OMS ganglion cells (datasets.oms_retina) under the same "
                      "white noise, same sizes, generated locally (retina_embedded.oms fits its models on it)",
    "oms-naturalscene": "embedded: the object-motion circuit's 6 OMS cells under jittered natural images with "
                        "independently moving natural-image objects (discs of 8-14 px radius), same sizes, generated "
                        "locally (not scored by a benchmark; docs/retina.md, OMS from natural scenes)",
    "oms-gratingmotion": "embedded: the object-motion circuit's 6 OMS cells under the OMS probe's own stimulus family "
                         "(a 12-px grating disc and its background jittered together, apart, or the disc alone) at "
                         "random positions, phases and jitter paths, never the probe's seed 0; same sizes, generated "
                         "locally (a capacity check, not scored by a benchmark; docs/retina.md)",
}
KINDS = tuple(DESCRIPTIONS)
#: the kinds the object-motion circuit records (:func:`circuit_of`)
OMS_KINDS = ("oms-whitenoise", "oms-naturalscene", "oms-gratingmotion")
#: default sizes of the embedded recordings (frames at 100 Hz)
DEFAULT_SIZES = {"n_train": 24000, "n_test": 1500, "n_repeats": 8}


def white_noise(n_frames: int, rng: np.random.Generator, checker: int = 2) -> np.ndarray:
    """Binary (+-1) checkerboard flicker with ``checker``-pixel squares, new pattern every frame."""
    side = -(-FRAME_SIZE // checker)
    small = rng.choice(np.array([-1, 1], np.int8), size=(n_frames, side, side))
    return np.repeat(np.repeat(small, checker, 1), checker, 2)[:, :FRAME_SIZE, :FRAME_SIZE]


def _grey_images():
    from skimage import color, data, transform

    out = []
    for name in ("camera", "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry"):
        image = getattr(data, name)()
        image = color.rgb2gray(image) if image.ndim == 3 else image / 255.0
        image = transform.rescale(image.astype(np.float64), 0.35, anti_aliasing=True)  # ~180 px across
        out.append(((image - image.mean()) / (image.std() + 1e-9)).astype(np.float32))
    return out


def natural_movie(n_frames: int, rng: np.random.Generator, fixation: int = 100, jitter: float = 0.7) -> np.ndarray:
    """Jittered natural images: a 50x50 patch of a grey image, random-walk jitter (``jitter`` px per frame),
    a new image and position every ``fixation`` frames; scaled to zero mean and unit sd."""
    images = _grey_images()
    movie = np.empty((n_frames, FRAME_SIZE, FRAME_SIZE), np.float32)
    for start in range(0, n_frames, fixation):
        image = images[rng.integers(len(images))]
        h, w = image.shape
        y, x = rng.uniform(10, h - FRAME_SIZE - 10), rng.uniform(10, w - FRAME_SIZE - 10)
        for t in range(start, min(start + fixation, n_frames)):
            y = float(np.clip(y + rng.normal(0, jitter), 0, h - FRAME_SIZE))
            x = float(np.clip(x + rng.normal(0, jitter), 0, w - FRAME_SIZE))
            iy, ix = int(round(y)), int(round(x))
            movie[t] = image[iy:iy + FRAME_SIZE, ix:ix + FRAME_SIZE]
    return (movie - movie.mean()) / movie.std()


def object_scene(n_frames: int, rng: np.random.Generator, fixation: int = 100, jitter: float = 0.7,
                 n_objects: int = 2, radius: Tuple[float, float] = (8.0, 14.0),
                 anchors: Tuple[float, float] = (12.0, 38.0), own_jitter: Optional[float] = None) -> dict:
    """Natural scenes with objects that move on their own, after the framing of Olveczky, Baccus & Meister (2003): an
    object moving against a background that the eye's fixational jitter moves as a whole. Every ``fixation`` frames a
    new scene: a 50x50 patch of a grey image jittered by the eye (a random walk of ``jitter`` px per frame, as
    :func:`natural_movie`'s) and ``n_objects`` discs (radius uniform in ``radius`` px: the OMS probe's 12 within it,
    inside the inner edge of the object-motion circuit's 14-24 px annulus) each carrying a rigid patch of a natural
    image, centred uniformly in ``anchors`` px (so that they pass over the cells around the frame's centre). An object
    rides on the scene (the eye's jitter moves it too) and adds its own random walk of the same step size
    (``own_jitter``, default ``jitter``): object and background differ only in the object's own motion, differential
    motion whenever it moves. Later objects occlude earlier ones. ``own_jitter=0`` is the same scenes, eye path and
    objects under global motion alone (the random draws are the same, so the two movies differ only in the objects'
    own motion).

    Returns ``movie`` ``(T, 50, 50)`` float32 in the images' z-scored units (not rescaled: :func:`natural_object_movie`
    scales it), ``scene_shift`` ``(T, 2)`` the background's integer displacement on screen since its fixation began
    (y, x), ``centres`` ``(T, n_objects, 2)`` the objects' integer centres on screen and ``radii``
    ``(T, n_objects)``."""
    images = _grey_images()
    size = FRAME_SIZE
    big = int(np.ceil(radius[1]))
    side = 2 * big + 1
    movie = np.empty((n_frames, size, size), np.float32)
    scene_shift = np.zeros((n_frames, 2), int)
    centres = np.zeros((n_frames, n_objects, 2), int)
    radii = np.zeros((n_frames, n_objects))
    yy, xx = np.mgrid[-big:big + 1, -big:big + 1]
    for start in range(0, n_frames, fixation):
        image = images[rng.integers(len(images))]
        h, w = image.shape
        y, x = rng.uniform(10, h - size - 10), rng.uniform(10, w - size - 10)
        y0, x0 = int(round(y)), int(round(x))
        objects = []
        for _ in range(n_objects):
            texture = images[rng.integers(len(images))]
            th, tw = texture.shape
            ty, tx = int(rng.integers(0, th - side)), int(rng.integers(0, tw - side))
            r = float(rng.uniform(*radius))
            patch = texture[ty:ty + side, tx:tx + side]
            objects.append({"patch": patch, "disc": yy ** 2 + xx ** 2 <= r ** 2, "r": r,
                            "anchor": rng.uniform(*anchors, 2), "own": np.zeros(2)})
        for t in range(start, min(start + fixation, n_frames)):
            y = float(np.clip(y + rng.normal(0, jitter), 0, h - size))
            x = float(np.clip(x + rng.normal(0, jitter), 0, w - size))
            iy, ix = int(round(y)), int(round(x))
            frame = image[iy:iy + size, ix:ix + size].copy()
            shift = np.array([y0 - iy, x0 - ix])  # the image moves on screen opposite to the patch's window
            scene_shift[t] = shift
            for k, obj in enumerate(objects):
                obj["own"] = obj["own"] + rng.normal(0, 1.0, 2) * (jitter if own_jitter is None else own_jitter)
                cy, cx = np.clip(np.round(obj["anchor"] + obj["own"] + shift), 0, size - 1).astype(int)
                centres[t, k], radii[t, k] = (cy, cx), obj["r"]
                # the disc's window on screen and in the patch (clipped at the frame's edges)
                top, left = cy - big, cx - big
                sy0, sx0 = max(top, 0), max(left, 0)
                sy1, sx1 = min(top + side, size), min(left + side, size)
                region = (slice(sy0 - top, sy1 - top), slice(sx0 - left, sx1 - left))
                view = frame[sy0:sy1, sx0:sx1]
                view[obj["disc"][region]] = obj["patch"][region][obj["disc"][region]]
            movie[t] = frame
    return {"movie": movie, "scene_shift": scene_shift, "centres": centres, "radii": radii}


def natural_object_movie(n_frames: int, rng: np.random.Generator, **options) -> np.ndarray:
    """:func:`object_scene`'s movie scaled to zero mean and unit sd (the stimulus of ``embedded:oms-naturalscene``)."""
    movie = object_scene(n_frames, rng, **options)["movie"]
    return (movie - movie.mean()) / movie.std()


#: the conditions of :func:`grating_motion`'s segments and how often each is drawn
GRATING_MOTION_CONDITIONS = {"global": 0.3, "differential": 0.3, "object": 0.3, "static": 0.1}


def grating_motion(n_frames: int, rng: np.random.Generator, segment: int = 200, radius: float = 12.0,
                   bar_width: int = 4, contrast: float = 0.3, speed: float = 1.0, smoothness: float = 20.0,
                   spread: float = 8.0) -> dict:
    """The OMS probe's stimulus family (:func:`datasets.retina_stimuli.object_motion`: a disc of ``radius`` px and its
    background, each a square-wave grating of ``bar_width`` px bars at ``contrast``, jittered along x with the
    probe's ``speed`` and ``smoothness``) in ``segment``-frame pieces, each with its own draw: the condition (global,
    differential, object-only motion or none, :data:`GRATING_MOTION_CONDITIONS`), the disc's centre (uniform within
    ``spread`` px of the frame's centre in y and x, over the object-motion circuit's cells 4 px from it), the
    gratings' phase (uniform over one period), the background's sign (the grating or its contrast inverse) and the
    jitter paths' seed (drawn from 1 up: never seed 0, the benchmark's, whose movies are thus held out; its centres,
    the cells' own positions, are drawn only by chance near). A recording of it asks whether a model can learn the
    object-motion computation from data that show it as the probe does (docs/retina.md, "a capacity check").

    Returns ``movie`` ``(T, 50, 50)`` float32 (intensities +-``contrast``, as the probe's, not rescaled) and per frame
    its segment's ``condition`` (index into the conditions' order), ``centre`` (y, x), ``seed``, ``phase`` and
    ``background_sign``."""
    from neurozoo.datasets.retina_stimuli import object_motion

    names = list(GRATING_MOTION_CONDITIONS)
    weights = np.array(list(GRATING_MOTION_CONDITIONS.values()))
    movie = np.empty((n_frames, FRAME_SIZE, FRAME_SIZE), np.float32)
    condition = np.zeros(n_frames, int)
    centre = np.zeros((n_frames, 2))
    seed = np.zeros(n_frames, np.int64)
    phases, signs = np.zeros(n_frames), np.zeros(n_frames)
    for start in range(0, n_frames, segment):
        length = min(segment, n_frames - start)
        which = int(rng.choice(len(names), p=weights / weights.sum()))
        where = FRAME_SIZE / 2 + rng.uniform(-spread, spread, 2)
        phase = float(rng.uniform(0, 2 * bar_width))
        sign = float(rng.choice([1.0, -1.0]))
        drawn = int(rng.integers(1, 2 ** 31))
        piece = slice(start, start + length)
        # drawn at the full segment's length, so that a shorter last piece has the same paths' speed
        movie[piece] = object_motion(names[which], segment, tuple(where), radius, bar_width, contrast, speed,
                                     smoothness, drawn, background_sign=sign, phase=phase)[:length]
        condition[piece], centre[piece], seed[piece] = which, where, drawn
        phases[piece], signs[piece] = phase, sign
    return {"movie": movie, "condition": condition, "centre": centre, "seed": seed, "phase": phases,
            "background_sign": signs}


def circuit_of(kind: str):
    """The circuit that records the embedded recording ``kind``: the object-motion circuit for :data:`OMS_KINDS`, else
    the default circuit."""
    if kind in OMS_KINDS:
        from neurozoo.datasets.oms_retina import oms_retina

        return oms_retina()
    return default_retina()


def make_stimulus(kind: str, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """The movie of the embedded recording ``kind``: its stimulus class's (the object-motion circuit's white noise:
    :data:`datasets.retina_stimulus_class.EMBEDDED_CLASSES`); ``oms-naturalscene``'s natural scenes with independently
    moving objects (:func:`natural_object_movie`), not :func:`natural_movie`'s global jitter alone, under which object
    and background never move apart, so a fit would never see differential motion; ``oms-gratingmotion``'s jittered
    gratings (:func:`grating_motion`)."""
    if EMBEDDED_CLASSES.get(kind, kind) == "whitenoise":
        return white_noise(n_frames, rng)
    if kind == "naturalscene":
        return natural_movie(n_frames, rng)
    if kind == "oms-naturalscene":
        return natural_object_movie(n_frames, rng)
    if kind == "oms-gratingmotion":
        return grating_motion(n_frames, rng)["movie"]
    from neurozoo.datasets.errors import DataError

    raise DataError(f"unknown embedded retina recording {kind!r}; choose one of {', '.join(KINDS)}")


def _spike_times(counts: np.ndarray, t0: float, rng: np.random.Generator) -> np.ndarray:
    frames = np.repeat(np.arange(len(counts)), counts.astype(int))
    return np.sort(t0 + (frames + rng.uniform(0, 1, len(frames))) / FRAME_RATE)


def generate_recording(path, kind: str = "whitenoise", n_train: int = DEFAULT_SIZES["n_train"],
                       n_test: int = DEFAULT_SIZES["n_test"], n_repeats: int = DEFAULT_SIZES["n_repeats"],
                       seed: int = 0, retina: Optional[GroundTruthRetina] = None) -> Path:
    """Record the circuit: one training trial of ``n_train`` frames and ``n_repeats`` trials of a held-out
    ``n_test``-frame movie, written in the deep-retina layout. The ground-truth test rates are stored as an
    extra dataset ``test/response/true_rate`` (readers of real files ignore it)."""
    from neurozoo.datasets.retina_h5 import cell_name, firing_rates, write_experiment

    retina = retina or circuit_of(kind)
    rng = np.random.default_rng([seed, KINDS.index(kind) if kind in KINDS else 99])
    dtype = np.int8 if EMBEDDED_CLASSES.get(kind, kind) == "whitenoise" else np.float16
    train_stim = make_stimulus(kind, n_train, rng).astype(dtype)
    test_stim = make_stimulus(kind, n_test, rng).astype(dtype)
    _, train_counts = retina.simulate(train_stim.astype(np.float32), seed=int(rng.integers(2**31)), trials=1)
    test_rates, test_counts = retina.simulate(test_stim.astype(np.float32), seed=int(rng.integers(2**31)), trials=n_repeats)
    train_counts = train_counts[0]
    # "centered": the smoothing these recordings were made with (version 4); deep-retina's rule differs from it at
    # 5 ms (half a frame later) and by < 1e-4 at 10 and 20 ms, but would change every recording's bytes and so
    # every cached fit and retina score (retina_h5.firing_rates; README, data sets: deviations)
    train_resp = {**firing_rates(train_counts, rule="centered"), "binned": train_counts.astype(np.float32)}
    trial_rates = firing_rates(test_counts, rule="centered")  # each (R, C, T)
    test_resp = {key: value.mean(0) for key, value in trial_rates.items()}
    test_resp["binned"] = test_counts.mean(0).astype(np.float32)
    test_resp["true_rate"] = test_rates
    repeats = {cell_name(c): trial_rates["firing_rate_10ms"][:, c] for c in range(retina.n_cells)}
    spikes = {cell_name(c): _spike_times(train_counts[c], 0.0, rng) for c in range(retina.n_cells)}
    frame = 1.0 / FRAME_RATE
    attrs = {"source": "neurozoo embedded ground-truth retina", "kind": kind, "circuit_seed": retina.seed,
             "seed": seed, "version": VERSION, "frame_rate_hz": FRAME_RATE, "units": "spikes/s",
             "circuit": json.dumps(asdict(retina.params)), "cell_types": json.dumps(retina.cell_types),
             "cell_positions": json.dumps(retina.positions.round(2).tolist()),
             **_circuit_version(kind)}
    return write_experiment(path, train={"stimulus": train_stim, "time": np.arange(n_train) * frame, "response": train_resp},
                            test={"stimulus": test_stim, "time": (n_train + np.arange(n_test)) * frame,
                                  "response": test_resp, "repeats": repeats},
                            spikes=spikes, attrs=attrs)


def _circuit_version(kind: str) -> dict:
    """The object-motion circuit's own version, in an ``oms-*`` recording's settings and attributes (nothing for the
    default circuit's kinds, whose cache keys and bytes stay as they were)."""
    if kind not in OMS_KINDS:
        return {}
    from neurozoo.datasets.oms_retina import VERSION as OMS_VERSION

    return {"oms_version": OMS_VERSION}


def recordings_folder() -> Path:
    """Where the embedded recordings are cached, with a manifest of the digest of each as generated."""
    return cache_dir() / "retina"


def _embedded_path(kind: str, sizes: dict) -> tuple:
    """The cache path of the embedded recording ``kind`` at ``sizes`` and its generator settings (nothing is made)."""
    if kind not in KINDS:
        from neurozoo.datasets.errors import DataError

        raise DataError(f"unknown embedded retina recording {kind!r}; choose one of {', '.join(KINDS)}")
    config = {**DEFAULT_SIZES, **sizes, "seed": sizes.get("seed", 0), "version": VERSION, **_circuit_version(kind)}
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    return recordings_folder() / f"{kind}-{key}.h5", config


def embedded_retina_generated(kind: str) -> bool:
    """Whether the default-size embedded recording ``kind`` (the one ``embedded:KIND`` names) is in the cache."""
    return _embedded_path(kind, {})[0].is_file()


def embedded_kind(path, sha256: Optional[str] = None) -> Optional[str]:
    """The kind of the embedded recording (``embedded:KIND``) that ``path`` is, by its file name (which holds the
    generator's settings and circuit version, so a copy made on another machine is named alike) or by ``sha256``
    being the digest recorded here when that recording was generated; None for any other recording. Nothing is
    generated or read but the manifest."""
    for kind in KINDS:
        embedded = _embedded_path(kind, {})[0]
        if Path(path).name == embedded.name or (sha256 is not None and sha256 == recorded_sha256(embedded)):
            return kind
    return None

def load_embedded_retina(kind: str = "whitenoise", **sizes) -> Path:
    """Path to the embedded recording ``kind`` (generated on first use, then read from the cache). The sha256 of what
    was generated is recorded in ``retina/manifest.json`` (``zoo data verify`` checks it); a cached file that is no
    longer readable, differs from that digest or has none recorded, is generated again (on the machine that
    generated it, normally the same bytes). The digest is this machine's, never pinned: another
    CPU may compute the generator's floats differently in their last bits."""
    path, config = _embedded_path(kind, sizes)
    damage = _damage(path) if path.is_file() else "missing"
    if damage:
        if damage != "missing":
            import warnings

            warnings.warn(f"{path}: the cached recording {damage}; generating it again", stacklevel=2)
        # written whole over the damaged file, never unlinked first: another run that found it damaged too, or that
        # is generating it, keeps a file to read; its digest recorded before it is renamed into place
        with generated(path) as tmp:
            generate_recording(tmp, kind, **{k: config[k] for k in ("n_train", "n_test", "n_repeats", "seed")})
    return path


def _damage(path: Path) -> Optional[str]:
    """What is wrong with a cached recording (None: nothing found)."""
    if not _readable_hdf5(path):
        return "cannot be read (truncated or damaged)"
    expected = recorded_sha256(path)
    if expected is None:  # generated before digests were recorded, or stopped before its digest was (until 2026-12-04)
        return ("has no recorded digest, so it cannot be verified (generated before digests were recorded, or "
                "stopped before its digest was)")
    actual = sha256_file(path)  # remembered: the provenance of the fit or score that follows hashes it too
    return None if actual == expected else f"differs from the digest recorded when it was generated (sha256 " \
                                           f"{actual}, recorded {expected}: modified or damaged)"


def _readable_hdf5(path: Path) -> bool:
    """Whether HDF5 opens the file: a truncated file fails its end-of-file check."""
    import h5py

    try:
        with h5py.File(path, "r"):
            return True
    except OSError:
        return False
