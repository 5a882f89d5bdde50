"""Search over local recurrent cells and long-range feedback motifs (optuna TPE, RDB storage shared by
workers), exporting the best configurations as graph specs. ``zoo search`` is ``cli``."""
from neurozoo.convrnn.search.export import best_trials, export_specs, score_records
from neurozoo.convrnn.search.objective import Objective, TrialSettings
from neurozoo.convrnn.search.space import Param, SearchSpace, builtin_spaces, load_space
from neurozoo.convrnn.search.study import default_storage, make_storage, open_study, run_worker, split_trials

__all__ = [
    "SearchSpace", "Param", "load_space", "builtin_spaces", "Objective", "TrialSettings", "open_study",
    "make_storage", "run_worker", "split_trials", "default_storage", "best_trials", "export_specs", "score_records",
]
