"""Built-in retina models; importing this package registers them in ``retina.MODELS``. Their modules (torch) are
imported when a model is first made (``lazy_factory``): ``zoo list`` lists them without torch."""
from neurozoo import retina
from neurozoo.datasets.lazy_exports import lazy_factory

for _module, _name, _description, _tags in (
        ("bncnn", "bncnn", "BN-CNN (McIntosh et al. 2016; torch-deep-retina BNCNN): conv 8@15x15, BatchNorm1d over "
                           "units, noise 0.05, ReLU, conv 8@11x11, BN, noise, ReLU, dense (no bias), BN, softplus", {}),
        ("bncnn", "bncnn2016", "2016 CNN: conv 16@15x15, conv 8@9x9, dense, parametric softplus",
         {"default_zoo": False}),
        ("ln", "ln", "LN model: rank-2 spatiotemporal filter (40x50x50) per cell + fitted softplus", {}),
        ("glm", "glm", "Poisson GLM: rank-2 stimulus filter + 20-frame post-spike filter, softplus", {}),
        ("subunits", "twosubunit", "two-subunit model: rectified ON and OFF low-rank subunits per cell converging at "
                                   "a softplus", {"default_zoo": False})):
    retina.MODELS.add(_name, lazy_factory(f"{__name__}.{_module}", _name), description=_description, family="retina",
                      **_tags)
del _module, _name, _description, _tags
