"""Process facts the tests of stopped jobs assert on."""
import signal
import subprocess
from contextlib import contextmanager
from typing import Mapping, Sequence


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False



def run_killed(command: Sequence[str], env: Mapping[str, str], timeout: float = 120) -> str:
    """The stdout of ``command + ["kill"]``, run to its end, which must be by SIGKILL: the first owner of a temporary
    in a test of SIGKILL leftovers (it kills itself once its temporary exists, printing what the test needs)."""
    killed = subprocess.run([*command, "kill"], env=env, capture_output=True, text=True, timeout=timeout)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    return killed.stdout


@contextmanager
def live_waiting(command: Sequence[str], env: Mapping[str, str]):
    """``command + ["wait"]`` started: the live owner of a temporary beside a killed one's (:func:`run_killed`), which
    makes its own and waits for a line on stdin. Yields the Popen; afterwards it is let go and must exit 0."""
    live = subprocess.Popen([*command, "wait"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        yield live
    finally:
        live.communicate("\n", timeout=60)
    assert live.returncode == 0
