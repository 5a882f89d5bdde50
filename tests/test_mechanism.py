"""Mechanism recovery on the OSR: known answers from a BN-CNN whose first layer is built from the ground-truth
circuit's own ON and OFF pathway filters."""
import torch

from neurozoo.datasets.synthetic_retina import default_retina
from neurozoo.retina.mechanism import channel_types, post_omission_ranking
from neurozoo.retina.models.bncnn import RetinaCNN


def _pathway_model(n_cells=1):
    """Channel 0: the circuit's ON bipolar filter; channel 1: its fast OFF filter (full field, rectified by the
    ReLU); channels 2-7 silent. Only channels 0 and 1 reach the output of each cell (all alike)."""
    truth = default_retina()
    torch.manual_seed(0)
    model = RetinaCNN(n_cells=n_cells, noise_std=0.0).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for bn in (model.bn1, model.bn2, model.bn3):
            bn.weight.fill_(1.0), bn.running_mean.zero_(), bn.running_var.fill_(1.0)
        # window channel c is frame t - 39 + c: the filter's tap k sits at channel 39 - k
        for channel, h in ((0, truth.h_osr_on), (1, truth.h_osr_off)):
            model.conv1.weight[channel] = torch.as_tensor(h[::-1].copy(), dtype=torch.float32)[:, None, None] / 225
        model.conv1.bias[1] = -0.05  # a threshold, like the OFF bipolar's
        model.conv2.weight[0, 0] = 1.0 / 121
        model.conv2.weight[0, 1] = 1.0 / 121
        model.dense.weight[:, :26 * 26] = 1.0 / 676
    return model


def test_channels_typed_by_the_ground_truth_pathways_and_ranked_after_the_omission():
    model = _pathway_model()
    types = channel_types(model, default_retina())
    assert types["type"][0] == "on" and types["type"][1] == "off"
    assert types["r_on"][0] > 0.9 and types["r_off"][1] > 0.9
    assert (types["type"][2:] == "").all()  # silent channels are nothing
    ranking = post_omission_ranking(model, cell=0, period=10, steps=8)
    assert set(ranking[:2].tolist()) <= {0, 1} and 0 in ranking[:2].tolist()


def test_mechanism_benchmark_registered_and_a_model_without_hidden_units_scores_zero(tmp_path, monkeypatch):
    from neurozoo import benchmarks
    import neurozoo.benchmarks.osr  # noqa: F401  (registers retina_embedded.osr-mechanism)
    from neurozoo.retina.fit import create_model

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    assert "retina_embedded.osr-mechanism" in benchmarks.list_benchmarks()
    bench = benchmarks.load("retina_embedded.osr-mechanism", sizes=dict(n_train=300, n_test=100, n_repeats=2))
    score = bench.score(create_model("ln", n_cells=12))
    assert score.value == 0.0 and score.raw == 0.0 and score.provenance["data_sha256"]
    assert score.provenance["settings"]["mechanism"]["note"] == "no first-layer units to attribute"


def test_the_pathway_model_scores_one_and_models_missing_a_pathway_score_less():
    """The score tells the right circuit from ablated ones: both pathways -> 1; the ON pathway removed -> 0.5 (its
    OFF channel found, no ON one); both replaced by a channel of neither kind (a sustained, unrectified-looking
    full-field filter) -> 0."""
    from neurozoo.retina.mechanism import mechanism_recovery

    truth = default_retina()
    full = mechanism_recovery(_pathway_model(), truth, k=2, cells=[0], reduce=False)
    assert full["value"] == 1.0 and sorted(full["cells"][0]["top_types"]) == ["off", "on"]

    no_on = _pathway_model()
    with torch.no_grad():
        no_on.conv1.weight[0] = 0.0
    no_on.train()  # analysed in eval mode, handed back in training mode
    ablated = mechanism_recovery(no_on, truth, k=2, cells=[0], reduce=False)
    assert no_on.training
    assert ablated["value"] == 0.5 and "on" not in ablated["channels"]["type"]

    neither = _pathway_model()
    with torch.no_grad():
        neither.conv1.weight[:2] = 0.0
        neither.conv1.weight[2, -20:] = 1.0 / (20 * 225)  # a 20-frame box filter: a slow, linear-like channel
        neither.conv1.bias[2] = 0.5
        neither.conv2.weight[0, 2] = 1.0 / 121
    wrong = mechanism_recovery(neither, truth, k=2, cells=[0], reduce=False)
    assert wrong["value"] == 0.0 and wrong["channels"]["type"][2] == "", wrong["channels"]


def test_the_mechanism_runs_on_a_model_of_another_dtype_or_device():
    """Its stimuli were float32 CPU tensors: a model fitted on the GPU (zoo score retina_embedded.osr-mechanism
    --device cuda) or held in float64 failed in its first convolution. The float64 model stands in for the device
    here (a CPU-only machine has no other)."""
    model = _pathway_model().double()
    types = channel_types(model, default_retina(), periods=(10,))
    assert types["type"][0] == "on" and types["type"][1] == "off"
    assert set(post_omission_ranking(model, cell=0, period=10, steps=2)[:2].tolist()) <= {0, 1}
