"""Regenerate the OSR figures of docs/osr-investigation.md and docs/retina.md (circuit version 4) and print their
numbers.

    PYTHONPATH=.nz python docs/figures/retina/osr_v4.py fitted       # models fitted to white noise (cached fits)
    PYTHONPATH=.nz python docs/figures/retina/osr_v4.py flashtrains  # BN-CNN fitted to random flash trains (~6 min)
    PYTHONPATH=.nz python docs/figures/retina/osr_v4.py window       # the circuit seen through a 40-frame window
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

import neurozoo.datasets.synthetic_retina as synthetic
from neurozoo.retina.phenomena.osr import omitted_stimulus_response, plot_osr

HERE = Path(__file__).parent
CIRCUIT = synthetic.default_retina()
ONOFF = np.flatnonzero(np.array(CIRCUIT.cell_types) == "onoff")


def summary(result):
    return {"slopes": result.slope[ONOFF].round(2).tolist(), "r2": result.r2[ONOFF].round(2).tolist(),
            "min_peak_ratio": np.fmin.reduce(result.peak_ratio[ONOFF], axis=1).round(2).tolist(),
            "latency_cell6": result.latencies[ONOFF[0]].round(1).tolist()}


def fitted(models=("bncnn", "ln", "twosubunit", "glm")):
    from neurozoo.retina.embedded_fit import fitted_embedded_model

    results = {"ground truth (circuit v4)": omitted_stimulus_response(CIRCUIT)}
    for name in models:
        model, _ = fitted_embedded_model(name, "whitenoise", seed=0, progress=False)
        results[f"{name} (whitenoise)"] = omitted_stimulus_response(model)
    for name, result in results.items():
        print(name, json.dumps(summary(result)))
    plot_osr(results, HERE / "osr_v4_whitenoise.png", cells=list(ONOFF), title="OSR latency vs period, ON-OFF cells")


def flash_movie(n_frames, rng):
    """Full-field flash trains (periods 5-18 frames, 4-10 flashes, grey gaps of 30-80 frames), low-contrast
    checkerboard noise (sd 0.5) on 30 % of the frames."""
    movie = np.zeros((n_frames, 50, 50), np.float32)
    t = int(rng.integers(20, 60))
    while t < n_frames:
        period, count = int(rng.integers(5, 19)), int(rng.integers(4, 11))
        for onset in t + period * np.arange(count):
            movie[onset:onset + 2] = -2.0
        t += count * period + int(rng.integers(30, 80))
    noisy = rng.random(n_frames) < 0.3
    movie[noisy] += 0.5 * synthetic.white_noise(n_frames, rng)[noisy]
    return movie


def flashtrains(path=Path("/tmp/osr_v4_flashtrains.h5")):
    from neurozoo.retina.fit import create_model, evaluate, fit

    synthetic.make_stimulus = lambda kind, n, rng: flash_movie(n, rng)  # float16 storage via "naturalscene"
    synthetic.generate_recording(path, "naturalscene", n_train=24000, n_test=1500, n_repeats=4)
    torch.manual_seed(0)
    model = fit(create_model("bncnn", n_cells=CIRCUIT.n_cells), path, progress=False, seed=0).model.eval()
    print("held-out r", float(evaluate(model, path)["correlation"].median()))
    results = {"ground truth (circuit v4)": omitted_stimulus_response(CIRCUIT),
               "bncnn fitted on flash trains": omitted_stimulus_response(model)}
    print(json.dumps(summary(results["bncnn fitted on flash trains"])))
    plot_osr(results, HERE / "osr_v4_bncnn_flashtrains.png", cells=list(ONOFF))


def window(frames=40):
    """The rate at t from the circuit run on grey followed by frames t - 39 .. t only."""
    grey = np.zeros((60, 50, 50), np.float32)
    rest = CIRCUIT.rates(np.concatenate([grey, grey]))[:, -1]

    def respond(movie):
        out = np.repeat(rest[:, None], len(movie), 1).astype(float)
        for t in range(len(movie)):
            clip = movie[max(0, t - frames + 1):t + 1]
            if clip.any():
                out[:, t] = CIRCUIT.rates(np.concatenate([grey, clip]))[:, -1]
        return out

    print(json.dumps(summary(omitted_stimulus_response(respond))))


if __name__ == "__main__":
    {"fitted": fitted, "flashtrains": flashtrains, "window": window}[sys.argv[1]]()
