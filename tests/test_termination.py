"""datasets.termination: where a deferred SIGTERM (or Ctrl-C) stops a command, and the handlers it leaves behind."""
import os
import shutil
import signal
import site
import subprocess
import sys
import sysconfig

import pytest

from neurozoo.datasets.termination import (raise_if_terminated, sigterm_deferred, sigterm_stops_at_once,
                                           stopping_at_once, termination_requested)


def test_a_sigterm_before_the_work_begins_stops_at_once_and_after_it_at_the_next_safe_point():
    """zoo score of a retina benchmark (and zoo fit, a zoo run retina job) took a SIGTERM only at its first safe point,
    after seconds of imports and reading in which nothing is written. Inside ``stopping_at_once`` it is raised where
    Python is, the lines after the signal not run; from the first safe point of the block on, or inside a deferred
    block of its own (a lock's wait, a fit), it waits for a safe point again."""
    ran = []
    with sigterm_deferred():
        with pytest.raises(KeyboardInterrupt, match="^signal 15$"), stopping_at_once():
            os.kill(os.getpid(), signal.SIGTERM)
            ran.append("after the signal")
    assert ran == [] and termination_requested() is None
    with pytest.raises(KeyboardInterrupt, match="^signal 15$"), sigterm_deferred():  # pending as it begins
        os.kill(os.getpid(), signal.SIGTERM)
        with stopping_at_once():
            ran.append("inside")
    assert ran == []
    with sigterm_deferred(), stopping_at_once():
        raise_if_terminated()  # the work has begun
        os.kill(os.getpid(), signal.SIGTERM)
        ran.append("after the safe point")
        with pytest.raises(KeyboardInterrupt, match="^signal 15$"):
            raise_if_terminated()
    assert ran == ["after the safe point"]
    with sigterm_deferred(), stopping_at_once():
        with sigterm_deferred():  # a block of its own: its writes wait for its safe points
            os.kill(os.getpid(), signal.SIGTERM)
            ran.append("in the inner block")
        os.kill(os.getpid(), signal.SIGTERM)  # the stretch ended with the inner block's beginning
        ran.append("after the inner block")
        assert termination_requested() == signal.SIGTERM
    assert ran[1:] == ["in the inner block", "after the inner block"] and termination_requested() is None


def test_stopping_at_once_outside_a_deferred_block_changes_nothing():
    before = signal.getsignal(signal.SIGTERM)
    with stopping_at_once():
        assert signal.getsignal(signal.SIGTERM) is before
    with sigterm_deferred():  # and leaves no stretch behind for a later block
        os.kill(os.getpid(), signal.SIGTERM)
        assert termination_requested() == signal.SIGTERM


class SigtermInDel:
    """An object whose ``__del__`` sends the process a SIGTERM (its handler runs there, inside os.kill) and works on:
    a garbage-collector callback in which Python drops the handler's KeyboardInterrupt ("Exception ignored in")."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(100))


def stopped_after_del():
    """How many statements of a loop without a safe point ran after the ``del`` of a :class:`SigtermInDel` before a
    ``KeyboardInterrupt("signal 15")`` stopped them (None: the loop ran to its end unstopped)."""
    ran = []
    dying = SigtermInDel()
    try:
        del dying
        for i in range(1000):
            ran.append(i)
    except KeyboardInterrupt as stop:
        assert str(stop) == "signal 15"
        return len(ran)
    return None


class ValueErrorInDel:
    """An exception unrelated to a stop, dropped by Python in a ``__del__``: it must reach the unraisablehook."""

    def __del__(self):
        raise ValueError("unrelated")


def unraisables(monkeypatch):
    """The exceptions that reach ``sys.unraisablehook`` from now on (a list, filled as they come), printed by none."""
    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: dropped.append(unraisable.exc_value))
    return dropped


@pytest.mark.parametrize("stretch", ["stopping_at_once", "sigterm_stops_at_once"])
def test_a_stop_dropped_in_a_garbage_collector_callback_is_raised_right_after_it(stretch, monkeypatch):
    """A SIGTERM whose handler ran inside a ``__del__`` (or a weakref callback: optuna collects garbage in a search
    trial) raised there, and Python dropped it: the stretch ran on to its next safe point (seconds later), or, with
    none (``zoo reproduce``'s sigterm_stops_at_once, a stopping_at_once block without one), to its end as if never
    asked to stop. It is raised once, in the code right after the callback; other exceptions dropped there reach the
    unraisablehook as before, ours not (nor printed), and the hook is put back after the stretch."""
    dropped = unraisables(monkeypatch)
    hook = sys.unraisablehook

    with sigterm_deferred() if stretch == "stopping_at_once" else sigterm_stops_at_once():
        with stopping_at_once() if stretch == "stopping_at_once" else sigterm_stops_at_once():
            unrelated = ValueErrorInDel()
            del unrelated
            assert [type(e) for e in dropped] == [ValueError]
            assert stopped_after_del() in (0, 1)  # before a second statement of the loop, not at its end
            for i in range(1000):  # once: not again
                pass
        assert [type(e) for e in dropped] == [ValueError]
    assert sys.unraisablehook is hook


class CtrlCInDel:
    """An object whose ``__del__`` receives a Ctrl-C (SIGINT), as :class:`SigtermInDel` a SIGTERM."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(100))


@pytest.mark.parametrize("sigint_again", ["stopped at once: nothing kept", None])
def test_a_second_ctrl_c_dropped_in_a_garbage_collector_callback_is_raised_right_after_it(sigint_again, monkeypatch,
                                                                                          python_ctrl_c):
    """A block that defers Ctrl-C takes a second one as "stop now", anywhere in it (its work begun, no stretch that
    stops at once open): its handler raises ``KeyboardInterrupt(sigint_again)`` where Python is. Inside a ``__del__``
    Python dropped it, and the block ran on to its next safe point, or, with none, to its end. It is raised once, in
    the code right after the callback, with the block's words; other exceptions dropped there reach the unraisablehook
    as before, ours not, and the hook is put back after the block."""
    dropped = unraisables(monkeypatch)
    hook = sys.unraisablehook

    with sigterm_deferred("", sigint_again):  # "": Ctrl-C deferred without a line on stderr
        os.kill(os.getpid(), signal.SIGINT)  # the first: a request
        assert termination_requested() == signal.SIGINT  # seen by a safe point: the work has begun
        unrelated = ValueErrorInDel()
        del unrelated
        assert [type(e) for e in dropped] == [ValueError]
        ran = []
        dying = CtrlCInDel()
        with pytest.raises(KeyboardInterrupt) as stop:
            del dying
            for i in range(1000):
                ran.append(i)
        assert len(ran) in (0, 1) and stop.value.args == ((sigint_again,) if sigint_again else ())
        for i in range(1000):  # once: not again
            pass
    assert [type(e) for e in dropped] == [ValueError]
    assert sys.unraisablehook is hook


#: an embedding program: a Ctrl-C handler set from C (it writes a line), then Python as `python` would run
EMBEDDING = r"""
#include <Python.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static void on_ctrl_c(int signum) {
    static const char line[] = "the C handler\n";
    write(1, line, sizeof line - 1);
}

int main(int argc, char **argv) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_ctrl_c;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    return Py_BytesMain(argc, argv);
}
"""

#: run by it: Ctrl-C deferred by two blocks in turn (a retina fit's; the second sees Python's table say SIG_DFL for
#: the handler the first put back), the second's request left to the block's end, then a Ctrl-C after them
DEFERRING = """
import os, signal, site
for folder in os.environ["TEST_SITE_PACKAGES"].split(os.pathsep):  # the .pth files too: an editable install's finder
    site.addsitedir(folder)
from neurozoo.datasets.termination import sigterm_deferred, termination_requested

print("before:", signal.getsignal(signal.SIGINT), flush=True)
with sigterm_deferred(""):
    os.kill(os.getpid(), signal.SIGINT)
    print("deferred:", termination_requested(), flush=True)
os.kill(os.getpid(), signal.SIGINT)
with sigterm_deferred(""):
    os.kill(os.getpid(), signal.SIGINT)
    print("deferred again", flush=True)
print("after the second block", flush=True)
os.kill(os.getpid(), signal.SIGINT)
print("ran on", flush=True)
"""


def test_a_ctrl_c_handler_set_from_c_is_put_back_after_a_deferred_block(tmp_path):
    """A program embedding Python with its own Ctrl-C handler (``signal.getsignal`` gives None for it): a block
    deferring Ctrl-C (a retina fit's) replaced it and restored the default, so the next Ctrl-C killed the program
    rather than reaching its handler. It is now put back through the C library, after each block, and a request no
    safe point saw is handed to it as the block ends (as a Python handler is), not raised as KeyboardInterrupt."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        pytest.skip("needs a C compiler and a shared libpython to build an embedding program")
    (tmp_path / "embedding.c").write_text(EMBEDDING)
    libdir = sysconfig.get_config_var("LIBDIR")
    version = sysconfig.get_config_var("LDVERSION")
    subprocess.run([compiler, str(tmp_path / "embedding.c"), "-o", str(tmp_path / "embedding"),
                    f"-I{sysconfig.get_paths()['include']}", f"-L{libdir}", f"-Wl,-rpath,{libdir}",
                    f"-lpython{version}"], check=True, capture_output=True, timeout=120)
    # the embedding program runs the base Python (PYTHONHOME), not this environment's: its site-packages are added by
    # the script, with their .pth files (`pip install -e` imports neurozoo through one), and sys.path for the rest
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONHOME": sys.base_prefix,
           "TEST_SITE_PACKAGES": os.pathsep.join(site.getsitepackages())}
    done = subprocess.run([str(tmp_path / "embedding"), "-c", DEFERRING], capture_output=True, text=True,
                          timeout=120, env=env)
    assert (done.returncode, done.stdout) == (0, "before: None\ndeferred: 2\nthe C handler\ndeferred again\n"
                                                 "the C handler\nafter the second block\nthe C handler\nran on\n"), \
        done.stderr[-2000:]


#: ``zoo`` that sends itself SIGTERM as argv[1] (module:function) is first called, mid-command; says whether that
#: function's call returned
SIGTERM_MID_COMMAND = """
import atexit, importlib, os, signal, sys
module_name, name = sys.argv[1].split(":")
module = importlib.import_module(module_name)
function, returned = getattr(module, name), []


def signalled(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    result = function(*args, **kwargs)
    returned.append(1)
    return result


setattr(module, name, signalled)
atexit.register(lambda: print(f"returned: {bool(returned)}"))
from neurozoo.leaderboard.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_command_without_safe_points_stopped_by_sigterm_exits_130_saying_so(tmp_path):
    """zoo probe, dynamics, compare, data, convert-weights, cache... (every command but those that take SIGTERM
    themselves: leaderboard.cli.OWN_SIGTERM) died of a SIGTERM without a word (exit -15), their clean-up never run.
    They now stop where Python is, as on Ctrl-C: exit 130, "zoo COMMAND: interrupted; signal 15", nothing written."""
    import torch

    from neurozoo.retina.fit import create_model

    torch.manual_seed(0)
    torch.save(create_model("bncnn", n_cells=12).state_dict(), tmp_path / "bncnn.pt")
    at = "neurozoo.retina.phenomena.osr:omitted_stimulus_response"  # zoo probe's model probed, past its loading
    arguments = ["probe", "osr", "bncnn", "--checkpoint", str(tmp_path / "bncnn.pt"), "--out", str(tmp_path / "out")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "NEUROZOO_HOME": str(tmp_path / "home")}
    stopped = subprocess.run([sys.executable, "-c", SIGTERM_MID_COMMAND, at, *arguments], capture_output=True,
                             text=True, timeout=300, env=env)
    assert (stopped.returncode, stopped.stderr.splitlines()[-1:], stopped.stdout.splitlines()[-1:]) == (
        130, ["zoo probe: interrupted; signal 15"], ["returned: False"]), stopped.stderr[-3000:]
    assert [path for path in (tmp_path / "out").rglob("*") if path.is_file()] == []


def test_a_sigterm_in_zoos_start_up_stops_it_saying_so(tmp_path):
    """A SIGTERM as zoo imported its command modules (~1 s, before any command's own handling) killed it without a
    word (exit -15). It now stops it as Ctrl-C does: exit 130, "zoo: interrupted; signal 15", the import under way
    not finished."""
    from test_score_stop import SIGNAL_AT_IMPORT

    marker = "neurozoo.benchmarks.dynamics.cli"  # the last of the command modules (leaderboard.cli.COMMAND_MODULES)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "NEUROZOO_HOME": str(tmp_path / "home")}
    stopped = subprocess.run([sys.executable, "-c", SIGNAL_AT_IMPORT, marker, "score", "--list"], capture_output=True,
                             text=True, timeout=120, env=env)
    assert (stopped.returncode, stopped.stderr.splitlines()[-1:], stopped.stdout.splitlines()[-1:]) == (
        130, ["zoo: interrupted; signal 15"], [f"signalled: True; {marker} imported: False"]), stopped.stderr[-3000:]



#: run as ``python -m`` (CPython's -m, which the entry points' ``sys.exit`` goes through): ``python -m`` argv[2] with
#: the rest as its arguments, a SIGTERM sent from inside the argv[1]-th ``exec`` of a string (dataclasses building a
#: class's methods as a module is imported) once a Python SIGTERM handler is in place; says what that exec was for
SIGNAL_IN_EXEC = '''
import atexit, builtins, runpy, signal, sys
real_exec, nth, seen, sent = builtins.exec, int(sys.argv.pop(1)), [], []


def exec_signalling(source, *args, **kwargs):
    if isinstance(source, str) and callable(signal.getsignal(signal.SIGTERM)) and not sent:
        seen.append(source)
        if len(seen) == nth:
            sent.append(source.split("(")[0])
            source = "__import__('os').kill(__import__('os').getpid(), 15)\\n" + source
    return real_exec(source, *args, **kwargs)


builtins.exec = exec_signalling
atexit.register(lambda: print(f"signalled in: {sent}"))
runpy.run_module(sys.argv.pop(1), run_name="__main__", alter_sys=True)
'''


def test_a_sigterm_in_an_exec_of_a_string_as_zoo_starts_exits_130_not_by_sigint(tmp_path):
    """About one SIGTERM in five sent to ``python -m neurozoo.leaderboard.cli`` in its start-up printed "zoo:
    interrupted; signal 15" and then died by SIGINT (exit -2), not 130: the stop had been raised in an ``exec`` of a
    string (dataclasses building methods in an import), which CPython remembers as an interrupt not handled and, for
    a ``-m`` run, acts on after ``main`` returned (datasets.termination.exit_status). So did a ``zoo search --workers
    K`` worker (``python -m neurozoo.convrnn.search.cli``), whose command reads its 130 as a stop. Sent in such an
    exec every time here, at several points of the imports (zoo score --list makes ~20 after its handler is set)."""
    (tmp_path / "signal_in_exec.py").write_text(SIGNAL_IN_EXEC)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
           "NEUROZOO_HOME": str(tmp_path / "home")}
    search = ["--data", str(tmp_path / "data"), "--trials", "1", "--space", "rgc_intermediate", "--out",
              str(tmp_path / "search")]
    runs = [("neurozoo.leaderboard.cli", ["score", "--list"], nth) for nth in (1, 4, 8, 12, 16, 20)]
    runs.append(("neurozoo.convrnn.search.cli", search, 1))
    for entry, arguments, nth in runs:
        stopped = subprocess.run([sys.executable, "-m", "signal_in_exec", str(nth), entry, *arguments],
                                 capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
        line = "zoo search: interrupted" if "search" in entry else "interrupted; signal 15"
        assert (stopped.returncode, stopped.stdout.splitlines()[-1:]) == (130, ["signalled in: ['def __create_fn__']"]), (
            entry, nth, stopped.stderr[-3000:])
        assert line in stopped.stderr.splitlines()[-1], (entry, nth, stopped.stderr[-3000:])
