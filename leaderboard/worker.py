"""Score one submission job in its own process: clean environment, own working folder, limits.

Parent side, :func:`run_isolated`: writes the job spec into a fresh folder and starts
``python -m neurozoo.leaderboard.worker spec.json result.json`` there with an environment that holds no secrets
(no database URL, no tokens: only PATH, locale, thread counts, the data cache and plugin path), a
memory limit (``RLIMIT_AS``) and a wall-clock limit (the whole process group is killed). The result file
is parsed and checked (finite values, the expected splits); anything else -- a crash, a hang, garbage,
NaN -- raises :class:`~leaderboard.zoo.ScoringError` with the reason, so the job fails and no score is
stored.

Worker side, :func:`main`: imports the submission's ``model.py``, builds the model, runs a smoke forward
pass on two benchmark images, then scores it with :func:`leaderboard.zoo.score_model`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from neurozoo.benchmarks.records import ScoreRecord
from neurozoo.leaderboard.zoo import ScoringError, check_record

DEFAULT_TIMEOUT_S = 1800.0
DEFAULT_MEMORY_BYTES = 8 * 2 ** 30
PASS_THROUGH = ("PATH", "LANG", "LC_ALL", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONPATH", "NEUROZOO_CACHE")


def clean_environment(workdir: Path) -> Dict[str, str]:
    from neurozoo.benchmarks.paths import cache_dir

    env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(HOME=str(workdir), TMPDIR=str(workdir), NEUROZOO_HOME=str(workdir), NEUROZOO_CACHE=str(cache_dir()),
               PYTHONDONTWRITEBYTECODE="1")
    return env


def _limits(memory_bytes: int):
    def apply():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def run_isolated(spec: Dict[str, Any], timeout_s: float = DEFAULT_TIMEOUT_S,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES) -> Tuple[ScoreRecord, Optional[ScoreRecord]]:
    with tempfile.TemporaryDirectory(prefix="neurozoo-worker-") as scratch:
        workdir = Path(scratch)
        (workdir / "spec.json").write_text(json.dumps(spec))
        process = subprocess.Popen([sys.executable, "-m", "neurozoo.leaderboard.worker", "spec.json", "result.json"],
                                   cwd=workdir, env=clean_environment(workdir), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True, preexec_fn=_limits(memory_bytes))
        try:
            output, _ = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise ScoringError(f"the submission exceeded the wall-clock limit of {timeout_s:g} s and was killed") from None
        tail = "\n".join((output or "").strip().splitlines()[-8:])
        if process.returncode != 0:
            why = f"killed by signal {-process.returncode}" if process.returncode < 0 else f"exit status {process.returncode}"
            if "MemoryError" in tail or "std::bad_alloc" in tail or "Cannot allocate memory" in tail:
                why += f" (out of memory: limit {memory_bytes / 2 ** 30:.1f} GiB)"
            raise ScoringError(f"the submission's worker failed ({why}):\n{tail}")
        return parse_result(workdir / "result.json", tail)


def parse_result(path: Path, tail: str = "") -> Tuple[ScoreRecord, Optional[ScoreRecord]]:
    if not path.is_file():
        raise ScoringError(f"the worker wrote no result:\n{tail}")
    try:
        data = json.loads(path.read_text())
        records = []
        for split in ("public", "hidden"):
            fields = {k: v for k, v in data[split].items() if k not in ("id", "created_at")}
            record = ScoreRecord(**fields)
            if not isinstance(record.value, (int, float)) or isinstance(record.value, bool):
                raise TypeError(f"{split} value {record.value!r} is not a number")
            records.append(check_record(record))
    except ScoringError:
        raise
    except Exception as error:
        raise ScoringError(f"the worker's result is malformed ({type(error).__name__}: {error})") from None
    return records[0], records[1]


# ------------------------------------------------------------------------------------------- worker side
def load_submission(folder: Path, weights: Optional[str]):
    import importlib.util

    import torch

    from neurozoo.benchmarks.extraction.time_mapping import StepTable

    sys.path.insert(0, str(folder))
    module_spec = importlib.util.spec_from_file_location("submission_model", folder / "model.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    built = module.create_model(str(folder / weights) if weights else None)
    model, mapping = (built if isinstance(built, tuple) else (built, None))
    if not isinstance(model, torch.nn.Module):
        raise ScoringError(f"model.py: create_model returned {type(model).__name__}, expected a torch.nn.Module")
    timing = None
    if mapping is not None:
        try:
            timing = {layer: StepTable(float(a), float(b), int(c)) for layer, (a, b, c) in dict(mapping).items()}
        except (TypeError, ValueError) as error:
            raise ScoringError(f"model.py: the time mapping must map layer -> [start_ms, width_ms, steps] ({error})") from None
    return model.eval(), timing


def smoke_test(model, images) -> None:
    import torch

    with torch.inference_mode():
        output = model(images)
    tensors = [output] if torch.is_tensor(output) else [v for v in getattr(output, "__dict__", {}).values()
                                                        if torch.is_tensor(v)]
    for tensor in tensors:
        if not torch.isfinite(tensor).all():
            raise ScoringError("smoke test: the model's output on two benchmark images contains NaN or infinity")


def main(argv=None) -> int:
    from neurozoo import benchmarks
    from neurozoo.leaderboard.zoo import score_model

    argv = argv if argv is not None else sys.argv[1:]
    spec = json.loads(Path(argv[0]).read_text())
    started = time.perf_counter()
    model, timing = load_submission(Path(spec["folder"]), spec.get("weights"))
    benchmark = benchmarks.load(spec["benchmark"])
    smoke_test(model, benchmark.stimuli.images[:2])
    public, hidden = score_model(model, spec, spec["model"], layers=spec["layers"], timing=timing)
    for record in (public, hidden):
        record.settings["submission_sha256"] = spec["sha256"]
        record.duration_s = time.perf_counter() - started
    Path(argv[1]).write_text(json.dumps({"public": asdict(public), "hidden": asdict(hidden)}, default=str))
    return 0



def score_job(job: Dict[str, Any], device: str = "cpu", timeout_s: float = DEFAULT_TIMEOUT_S,
              memory_bytes: int = DEFAULT_MEMORY_BYTES) -> Tuple[ScoreRecord, Optional[ScoreRecord]]:
    """Built-in zoo jobs run in this process (trusted code); submissions run isolated."""
    from neurozoo.leaderboard.zoo import score_spec

    if job["spec"]["family"] == "submission":
        return run_isolated(job["spec"], timeout_s, memory_bytes)
    return score_spec(job["spec"], device=device)


if __name__ == "__main__":
    sys.exit(main())
