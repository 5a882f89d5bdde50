import torch

from neurozoo import retina
import neurozoo.retina.models  # noqa: F401  (registers the built-in models)
from neurozoo.retina.models.bncnn import windows


def test_two_subunit_model_rectifies_each_pathway_and_its_fast_path_matches():
    torch.manual_seed(0)
    model = retina.create_model("twosubunit", n_cells=3)
    assert not retina.MODELS.get("twosubunit").tags.get("default_zoo", True)  # named only
    movie = torch.randn(40 + 9, 50, 50)
    torch.testing.assert_close(model.forward_movie(movie), model(windows(movie).contiguous()), rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        model.weights.copy_(torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]))
        subunits = model.subunits(windows(movie).contiguous())
        assert subunits.shape == (10, 2, 3) and (subunits >= 0).all()  # rectified
        # a light and a dark full-field flash drive opposite subunits of a cell whose filters are mirror images
        sta = torch.zeros(3, 40, 50, 50)
        sta[:, -5:] = 1.0
        model.init_from_sta(sta)
        model.subunit_bias.zero_()
        light, dark = torch.ones(1, 40, 50, 50), -torch.ones(1, 40, 50, 50)
        on_light, off_light = model.subunits(light)[0]
        on_dark, off_dark = model.subunits(dark)[0]
        assert (on_light > 0).all() and (off_light == 0).all() and (on_dark == 0).all() and (off_dark > 0).all()
