"""The local worker processes of ``zoo search --workers K``: each runs ``python -m neurozoo.convrnn.search.cli`` with
``--workers 1`` on the shared study, and this process waits for them.

* The storage URL reaches the workers in the environment (``$NEUROZOO_SEARCH_STORAGE``), not on their command line,
  where ``ps`` shows it, password included, to every user of the machine.
* A worker's error for the user (a corrupt image found mid-trial, a trial folder in use) goes to a report file of
  its own instead of the terminal. The first one stops the other workers (SIGTERM: each running trial ends FAIL
  with the user attribute ``interrupted``, "signal 15") and is raised once, here. Each of K workers used to fail a
  trial of its own on the same image, print its own error and leave the command to exit 1 with their exit codes.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

#: The storage URL of a ``zoo search`` without ``--storage`` (how the local workers receive it)
STORAGE_ENV = "NEUROZOO_SEARCH_STORAGE"


@dataclass
class WorkerRun:
    codes: List[int]  # exit statuses
    names: List[str]  # as the ``worker`` user attribute of their trials names them (objective.py)
    error: Optional[str]  # the message of the first worker stopped by an error for the user
    reporter: Optional[str]  # that worker's name


def run_workers(argv: Sequence[str], trials: Sequence[int], storage: str) -> WorkerRun:
    """Start one worker per entry of ``trials`` (the trials it runs) with the options ``argv`` and wait for all;
    once one of them stops on an error for the user, the others are stopped. Ctrl-C / SIGTERM here stops every
    worker, then propagates."""
    env = {**os.environ, STORAGE_ENV: storage}
    with tempfile.TemporaryDirectory(prefix="zoo-search-") as folder:  # mode 0700
        reports = [Path(folder) / f"worker{k}.txt" for k in range(len(trials))]
        procs = [subprocess.Popen([sys.executable, "-m", "neurozoo.convrnn.search.cli", *argv, "--trials", str(n),
                                   "--report", str(report)], env=env)
                 for n, report in zip(trials, reports)]
        try:
            first = _wait(procs, reports)
        except KeyboardInterrupt:  # the workers stop too, each marking its running trial FAIL
            _stop(procs)
            raise
    names = [f"{socket.gethostname()}:{proc.pid}" for proc in procs]
    return WorkerRun([proc.returncode for proc in procs], names, first and first[1], first and names[first[0]])


def _wait(procs: List[subprocess.Popen], reports: List[Path]) -> Optional[Tuple[int, str]]:
    """Wait for every worker; the index and message of the first to report an error for the user. The report comes
    before the worker's exit, which can take a second or two (torch's teardown): the others are stopped at once, before
    they meet the same error in trials of their own."""
    first = None
    while any(proc.poll() is None for proc in procs):
        if first is None:
            first = next(((k, report.read_text().strip()) for k, report in enumerate(reports) if report.is_file()),
                         None)
            if first is not None:
                _stop([proc for k, proc in enumerate(procs) if k != first[0]])
        time.sleep(0.1)
    if first is None:
        first = next(((k, report.read_text().strip()) for k, report in enumerate(reports) if report.is_file()), None)
    return first


def write_report(path, message: str) -> None:
    """A worker's report, whole or not at all (the command reads it while the worker runs)."""
    part = Path(f"{path}.part")
    part.write_text(message)
    os.replace(part, path)


def _stop(procs: List[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        proc.wait()
