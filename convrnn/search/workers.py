"""The local worker processes of ``zoo search --workers K``: each runs ``python -m neurozoo.convrnn.search.cli`` with
``--workers 1`` on the shared study, and this process waits for them.

* The storage URL reaches the workers in the environment (``$NEUROZOO_SEARCH_STORAGE``), not on their command line,
  where ``ps`` shows it, password included, to every user of the machine.
* A worker's error for the user (a corrupt image found mid-trial, a trial folder in use) goes to a report file of
  its own instead of the terminal. The first one stops the other workers (SIGTERM: each running trial ends FAIL
  with the user attribute ``interrupted``, "signal 15") and is raised once, here. Each of K workers used to fail a
  trial of its own on the same image, print its own error and leave the command to exit 1 with their exit codes.
* A worker that crashes (a bug: any other exception) writes its traceback to its report and stops the others in the
  same way; the command prints the traceback once, says which worker crashed in which trial, and exits 1. A worker
  that dies without a report (killed, out of memory, a segfault) stops the others too, and its running trial is
  marked FAIL here. The other workers used to run to the end while the crashed worker's traceback scrolled away,
  printed twice (optuna's log of the failed trial, then Python's), and the command exited 1 with "worker exit codes".
* The workers print only their per-trial lines (each names its trial): the search-space summary and the study's
  totals come once, from this command.
* The workers end with this command (Linux: :func:`end_with_parent`): killed alone (SIGKILL, the out-of-memory
  killer), it left its workers running their trials unsupervised, and a rerun started K more beside them.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from neurozoo.datasets.termination import raise_if_terminated, signal_when_parent_dies

#: The storage URL of a ``zoo search`` without ``--storage`` (how the local workers receive it)
STORAGE_ENV = "NEUROZOO_SEARCH_STORAGE"

#: The process id of the command that started a local worker (:func:`end_with_parent`)
PARENT_ENV = "NEUROZOO_SEARCH_PARENT"

#: The contents checksums of the data this command read (``--hash-images``; ``file_checksums.CONTENTS_CHECKSUMS``), JSON: each
#: worker takes them (:func:`remember_contents_checksums`) instead of reading every image again, once in its data check
#: and once per trial, while no file has changed since
CHECKSUMS_ENV = "NEUROZOO_SEARCH_CONTENTS_CHECKSUMS"

#: How many times a trial whose worker died unfinished is run again (``--retries``; ``study.recover_dead_trial``), as
#: optuna's ``RetryHeartbeatStaleTrialCallback(max_retry)`` counts: a configuration that kills its worker every time
#: (out of memory) is not run for ever. Here, not in study.py: the command's parser imports no optuna
MAX_RETRY = 2


@dataclass
class WorkerRun:
    codes: List[int]  # exit statuses
    names: List[str]  # as the ``worker`` user attribute of their trials names them (objective.py)
    failed: Optional[int] = None  # the index of the first worker to stop on an error or a crash (it stopped the others)
    error: Optional[str] = None  # its message, for an error for the user
    crash: Optional[str] = None  # its traceback, for a crash ("" for one that died without a report)

    @property
    def reporter(self) -> Optional[str]:
        return None if self.failed is None else self.names[self.failed]


def run_workers(argv: Sequence[str], trials: Sequence[int], storage: str,
                contents_checksums: Optional[Dict[str, str]] = None) -> WorkerRun:
    """Start one worker per entry of ``trials`` (the trials it runs) with the options ``argv`` and wait for all;
    once one of them stops on an error for the user or crashes, the others are stopped. Ctrl-C / SIGTERM here stops
    every worker, then propagates. ``contents_checksums``: this command's (:data:`CHECKSUMS_ENV`)."""
    env = {**os.environ, STORAGE_ENV: storage, PARENT_ENV: str(os.getpid()),
           CHECKSUMS_ENV: json.dumps(contents_checksums or {})}
    # here: the command's parser imports this module, no numpy
    from neurozoo.datasets.cache import owned_temporary_folder, worker_name

    # mode 0700, named with this process's host and pid: the folders of commands killed (SIGKILL) go as this one
    # starts, a concurrent command's stay
    with owned_temporary_folder("zoo-search-") as folder:
        reports = [Path(folder) / f"worker{k}.json" for k in range(len(trials))]
        # a SIGTERM this command ignores, its workers would ignore too, and it stops them with SIGTERM (_stop)
        ignored = signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        procs = [subprocess.Popen([sys.executable, "-m", "neurozoo.convrnn.search.cli", *argv, "--trials", str(n),
                                   "--report", str(report)], env=env, preexec_fn=_sigterm_default if ignored else None)
                 for n, report in zip(trials, reports)]
        try:
            first = _wait(procs, reports)
        except KeyboardInterrupt:  # the workers stop too, each marking its running trial FAIL
            _stop(procs)
            raise
    done = WorkerRun([proc.returncode for proc in procs], [worker_name(proc.pid) for proc in procs])
    if first is not None:
        done.failed, report = first
        if "error" in report:
            done.error = report["error"]
        else:
            done.crash = report.get("crash", "")
    return done


def _first_failure(procs: List[subprocess.Popen], reports: List[Path]) -> Optional[Tuple[int, dict]]:
    """The index and report of a worker that reported an error or a crash, or exited non-zero without a report
    (``{}``). The report comes before the worker's exit, which can take a second or two (torch's teardown)."""
    for k, (proc, report) in enumerate(zip(procs, reports)):
        code = proc.poll()  # before the report is read: a worker that exits has written its report
        if report.is_file():
            return k, json.loads(report.read_text())
        if code:
            return k, {}
    return None


def _wait(procs: List[subprocess.Popen], reports: List[Path]) -> Optional[Tuple[int, dict]]:
    """Wait for every worker; the first to fail (:func:`_first_failure`) has the others stopped at once, before they
    meet the same error in trials of their own."""
    first = None
    while any(proc.poll() is None for proc in procs):
        raise_if_terminated()
        if first is None:
            first = _first_failure(procs, reports)
            if first is not None:
                _stop([proc for k, proc in enumerate(procs) if k != first[0]])
        time.sleep(0.1)
    return first if first is not None else _first_failure(procs, reports)


def write_report(path, *, error: Optional[str] = None, crash: Optional[str] = None) -> None:
    """A worker's report of an error for the user or of a crash (its traceback), whole or not at all (the command
    reads it while the worker runs)."""
    part = Path(f"{path}.part")
    part.write_text(json.dumps({"error": error} if error is not None else {"crash": crash}))
    os.replace(part, path)


def remember_contents_checksums() -> None:
    """In a local worker: the contents checksums its command computed (:data:`CHECKSUMS_ENV`), as if computed here.
    Each is used only for files found in the state it was computed of (``file_checksums.files_state_sha256``)."""
    given = json.loads(os.environ.get(CHECKSUMS_ENV) or "{}")
    if given:
        from neurozoo.convrnn.training.file_checksums import CONTENTS_CHECKSUMS

        CONTENTS_CHECKSUMS.update(given)


def end_with_parent() -> bool:
    """In a local worker, as it starts: SIGTERM from the kernel once the command that started it dies (Linux's
    ``prctl(PR_SET_PDEATHSIG)``), which stops it as the command's own SIGTERM does (its running trial ends FAIL,
    ``interrupted``). A command killed alone (SIGKILL, the out-of-memory killer) left its workers running their trials
    unsupervised, and a rerun started K more workers beside them. False when that command is no longer this process's
    parent (it died before the request was made, which the kernel would then never signal): the worker is to stop.
    True elsewhere: no ``$NEUROZOO_SEARCH_PARENT`` (not a worker of this module's), not Linux (nothing is done there:
    a worker outlives a killed command, as before), or no C library ``prctl``. The signal comes when the thread that
    started the worker ends, so :func:`run_workers` runs in the command's main thread."""
    parent = os.environ.get(PARENT_ENV)
    if parent is None or not signal_when_parent_dies(signal.SIGTERM):
        return True
    return os.getppid() == int(parent)


def _sigterm_default() -> None:
    """A worker's SIGTERM back to its default (run in the worker before it starts) when this command ignores SIGTERM
    (started by a parent that ignores it, ``trap '' TERM``): the workers inherited SIG_IGN, which their deferred
    blocks leave in place (:mod:`datasets.termination`), so the SIGTERM with which this command stops them (a
    worker's error or crash, a Ctrl-C here) did nothing, and the command waited for them to run their trials to the
    end, as a loading worker ignoring SIGTERM would hang the trainer's exit (``datasets.termination.sigterm_from``).
    Their SIGTERM is then any sender's, as without SIG_IGN: a SIGTERM to the whole process group stops the workers,
    not this command, which says that they were interrupted."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop(procs: List[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        proc.wait()
