"""One eval_mode for every package that runs a model in eval mode and hands it back in the mode it found."""
import pytest
import torch

from neurozoo.datasets.model_modes import eval_mode


def test_eval_mode_restores_the_mode_it_found_also_after_an_error():
    model = torch.nn.Sequential(torch.nn.BatchNorm1d(3), torch.nn.Dropout(0.5))
    for training in (True, False):
        model.train(training)
        with pytest.raises(ValueError):
            with eval_mode(model) as inside:
                assert inside is model and not any(m.training for m in model.modules())
                raise ValueError
        assert all(m.training == training for m in model.modules())


def test_the_packages_use_the_shared_eval_mode():
    from neurozoo.retina import attribution, mechanism, reduction

    assert attribution.eval_mode is mechanism.eval_mode is reduction.eval_mode is eval_mode


def test_flops_leave_a_training_convrnn_training():
    from neurozoo import convrnn
    from neurozoo.convrnn.profile import flops

    model = convrnn.create_model("rgc_shallow", width_multiplier=0.125).train()
    assert flops(model, image_size=32)["total"] > 0 and model.training
