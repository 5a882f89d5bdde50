"""Search over local recurrent cells and long-range feedback motifs (optuna TPE, RDB storage shared by
workers), exporting the best configurations as graph specs. ``zoo search`` is ``cli``."""
from neurozoo.datasets.lazy_exports import lazy_exports

# imported on first use (see there): ``zoo`` imports this package's ``cli`` without torch
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "neurozoo.convrnn.search.export": ["best_trials", "export_specs", "score_records"],
    "neurozoo.convrnn.search.objective": ["Objective", "TrialSettings"],
    "neurozoo.convrnn.search.space": ["Param", "SearchSpace", "builtin_spaces", "load_space"],
    "neurozoo.convrnn.search.study": ["default_storage", "make_storage", "open_study", "run_worker", "split_trials"],
})
