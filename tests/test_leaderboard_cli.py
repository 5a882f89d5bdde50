"""The leaderboard's commands in process: token creation, refused submissions, submission status."""
import yaml

from neurozoo.leaderboard.cli import main
from neurozoo.leaderboard.db import LeaderboardDB


def _create_tokens(url, users, capsys):
    """``zoo token create`` for each user in turn; the tokens it printed."""
    tokens = []
    for user in users:
        assert main(["token", "create", user, "--db", url]) == 0
        tokens.append(capsys.readouterr().out.strip())
    return tokens


def test_a_leaked_token_is_revoked_and_refused(tmp_path, capsys):
    """The database had a revoked flag, but no command set it: a leaked token stayed valid for good."""
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    tokens = _create_tokens(url, ("dave", "dave", "erin"), capsys)
    db = LeaderboardDB(url)
    assert main(["token", "revoke", tokens[0], "--db", url]) == 0 and "revoked 1 token" in capsys.readouterr().out
    assert [db.user_for_token(t) for t in tokens] == [None, "dave", "erin"]
    assert main(["token", "revoke", tokens[0], "--db", url]) == 2  # already revoked
    assert "no live token matches" in capsys.readouterr().err
    assert main(["token", "revoke", "--user", "dave", "--db", url]) == 0
    assert [db.user_for_token(t) for t in tokens] == [None, None, "erin"]


def test_token_revoke_without_or_with_both_token_and_user_is_one_line_from_the_db_check(tmp_path, capsys):
    """The check lives once, in LeaderboardDB.revoke_tokens; the command turns its ValueError into exit 2."""
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    for argv in (["token", "revoke"], ["token", "revoke", "some-token", "--user", "dave"]):
        assert main(argv + ["--db", url]) == 2
        assert capsys.readouterr().err == "zoo token: error: token revoke: give a token or a user (one of the two)\n"


def test_token_submit_refusal_and_status(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    assert main(["token", "create", "carol", "--db", url]) == 0
    token = capsys.readouterr().out.strip()
    assert LeaderboardDB(url).user_for_token(token) == "carol"

    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "model.py").write_text("def create_model(weights):\n    raise SystemExit\n")
    meta = {"name": "x", "authors": ["c"], "description": "d", "licence": "MIT",
            "benchmarks": ["ventral_embedded.V4-temporal"], "layers": {"V4": "conv"}}
    (folder / "metadata.yaml").write_text(yaml.safe_dump({**meta, "layers": {}}))
    assert main(["submit", str(folder), "--db", url, "--store", str(tmp_path / "store")]) == 2
    assert "field 'layers' must be a non-empty dict" in capsys.readouterr().err

    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta))
    assert main(["submit", str(folder), "--db", url, "--store", str(tmp_path / "store"), "--user", "carol"]) == 0
    assert capsys.readouterr().out == "submission 1 (x): 1 job queued; run `zoo work` to score\n"  # was "1 job(s)"
    assert main(["submission", "1", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "ventral_embedded.V4-temporal: queued" in out
    assert main(["submission", "7", "--db", url]) == 2


def test_zoo_submit_and_the_leaderboard_commands_count_in_words(tmp_path, capsys):
    """zoo submit said "2 job(s) queued" (and zoo work, zoo submission "1 job(s)"): one helper counts for them all."""
    from neurozoo.datasets.text_table import counted

    assert [counted(n, "job") for n in (0, 1, 2)] == ["0 jobs", "1 job", "2 jobs"]
    assert counted(1, "failed job") == "1 failed job" and counted(3, "queued or running job") == "3 queued or running jobs"
    assert [counted(n, "process", "processes") for n in (1, 2)] == ["1 process", "2 processes"]  # an irregular plural
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "model.py").write_text("def create_model(weights):\n    raise SystemExit\n")
    (folder / "metadata.yaml").write_text(yaml.safe_dump({
        "name": "x", "authors": ["c"], "description": "d", "licence": "MIT",
        "benchmarks": ["ventral_embedded.V4-temporal", "cowley2023.V4"], "layers": {"V4": "conv"}}))
    assert main(["submit", str(folder), "--db", url, "--store", str(tmp_path / "store")]) == 0
    assert capsys.readouterr().out == "submission 1 (x): 2 jobs queued; run `zoo work` to score\n"
    assert main(["submission", "1", "--db", url, "--withdraw", "--reason", "test", "--by", "op"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "submission 1: withdrawn, 2 queued or running jobs cancelled"


def _nan_recording(tmp_path):
    import h5py
    import numpy as np

    from neurozoo.datasets.retina_h5 import write_experiment

    rng = np.random.default_rng(0)
    stimulus = rng.standard_normal((300, 50, 50)).astype("f4")
    train = {"stimulus": stimulus, "time": np.arange(300) * 0.01, "response": {"firing_rate_10ms": rng.random((2, 300))}}
    rates = rng.random((2, 100))  # repeated reliably (a warning of cells without explainable variance comes first)
    trials = rates[:, None] + 0.01 * rng.random((2, 3, 100))
    test = {"stimulus": stimulus[:100], "time": np.arange(100) * 0.01, "response": {"firing_rate_10ms": trials.mean(1)},
            "repeats": {"cell01": trials[0], "cell02": trials[1]}}
    path = write_experiment(tmp_path / "nan.h5", train=train, test=test)
    with h5py.File(path, "r+") as file:  # damaged after writing: write_experiment refuses a NaN itself
        file["train/stimulus"][120, 3, 4] = np.nan
    return path


def _delay_spec(tmp_path):
    from neurozoo import convrnn

    spec = convrnn.create_model("rgc_shallow", width_multiplier=0.125).spec.to_dict()
    layers = [layer["name"] for layer in spec["layers"]]
    spec["feedback"] = [{"source": layers[-1], "target": layers[0], "delay": "soon"}]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


BAD_INPUT = {
    "garbage checkpoint": (lambda t: ["run", "--models", "rgc_shallow", "--checkpoint",
                                      f"rgc_shallow={_garbage(t)}", "--db", f"sqlite:///{t / 'a.sqlite'}"],
                           "garbage.pt: not a readable PyTorch file of tensors (UnpicklingError; "),
    "NaN stimulus": (lambda t: ["fit", "ln", "--data", str(_nan_recording(t)), "--out", str(t / "fit"), "--quiet"],
                     "dataset train/stimulus: contains 1 NaN/inf value, the first at index (120, 3, 4) (frame 120, row 3, "
                     "column 4); expected finite intensities, shape (T, 50, 50)"),
    "delay: soon": (lambda t: ["info", str(_delay_spec(t)), "--image-size", "32"],
                    "field 'delay' must be an integer >= 0 (time steps), got 'soon'"),
    "--db notaurl": (lambda t: ["work", "--db", "notaurl"], "'notaurl': not a database URL"),
    "--user ''": (lambda t: ["submit", str(t), "--user", "", "--db", f"sqlite:///{t / 'a.sqlite'}"],
                  "--user '': expected 1 to 255 printable characters"),
    "--db foo://x": (lambda t: ["work", "--db", "foo://x"], "no database driver for this URL's scheme"),
    "unreachable PostgreSQL": (lambda t: ["work", "--db", "postgresql+psycopg2://u:pw@127.0.0.1:9/db"],
                               "postgresql+psycopg2://u:***@127.0.0.1:9/db': cannot open the database"),
    "SQLite in a missing folder": (lambda t: ["work", "--db", f"sqlite:///{t / 'missing' / 'x.sqlite'}"],
                                   "cannot open the SQLite file (does the folder"),
    "work on an empty database": (lambda t: ["work", "--db", f"sqlite:///{t / 'empty.sqlite'}"], "holds no jobs"),
    "score timm:nosuchnet": (lambda t: ["score", "timm:nosuchnet", "ventral_embedded.V4-temporal"],
                             "unknown timm model 'nosuchnet' (see timm.list_models())"),
    "token for an empty user": (lambda t: ["token", "create", "", "--db", f"sqlite:///{t / 'a.sqlite'}"],
                                "user name '': expected 1 to 255 printable characters, no surrounding spaces"),
    "token for a 300-character user": (lambda t: ["token", "create", "x" * 300, "--db", f"sqlite:///{t / 'a.sqlite'}"],
                                       "expected 1 to 255 printable characters"),
    "--device gpu": (lambda t: ["fit", "ln", "--data", "embedded:whitenoise", "--device", "gpu"],
                     "--device 'gpu': expected auto, cpu, cuda or cuda:N"),
    "score a retina model --width": (lambda t: ["score", "ln", "retina_embedded.osr", "--width", "0.5"],
                                     "ln: --width applies to image models (ConvRNNs, timm:) only"),
    # were silently ignored: the retina model was fitted and scored as without them
    "score a retina model --layers": (lambda t: ["score", "ln", "retina_embedded.whitenoise-heldout", "--layers",
                                                 "conv1"], "ln: --layers applies to image models"),
    "score a retina model, image options": (lambda t: ["score", "ln", "retina_embedded.osr", "--max-features", "10",
                                                       "--batch-size", "4", "--no-cache", "--set", "n_steps=2"],
                                            "ln: --max-features, --batch-size, --no-cache, --set apply to image models"),
    "score --width against --set": (lambda t: ["score", "rgc_shallow", "ventral_embedded.V4-temporal", "--width",
                                               "0.125", "--set", "width_multiplier=0.25"], "disagree"),
    # was queued, and each job failed with torch's size-mismatch report (dozens of lines) as its stored error
    "run checkpoint of another width": (lambda t: ["run", "--models", "rgc_shallow", "--benchmarks",
                                                   "ventral_embedded.V4-temporal", "--checkpoint",
                                                   f"rgc_shallow={_other_width(t)}", "--db", f"sqlite:///{t / 'a.sqlite'}"],
                                        "--checkpoint rgc_shallow=" + "{t}/w025.pt does not fit rgc_shallow at "
                                        "--width-multiplier 0.125: layers.conv1.stage.0.weight has shape (16, 3, 7, 7), "
                                        "the model's is (8, 3, 7, 7)"),
    # listed the parameters that differ, not the model the checkpoint's config says it was trained as
    "run checkpoint trained as another model": (lambda t: ["run", "--models", "rgc_shallow", "--benchmarks",
                                                           "ventral_embedded.V4-temporal", "--checkpoint",
                                                           f"rgc_shallow={_trained_as_timedecay(t)}", "--db",
                                                           f"sqlite:///{t / 'a.sqlite'}"],
                                                "--checkpoint rgc_shallow={t}/best.pth does not fit rgc_shallow at "
                                                "--width-multiplier 0.125 (it was "
                                                "trained as 'timedecay_shallow' by zoo train: score it as that model): "
                                                "missing "),
    # PyYAML's traceback (zoo info, train, score and dynamics read --set values as YAML)
    "info --set a value that is not YAML": (lambda t: ["info", "rgc_shallow", "--set", "cell_kind=[1"],
                                            "--set cell_kind=[1: VALUE is not valid YAML: expected ',' or ']', but got "
                                            "'<stream end>' at line 1, column 3 (while parsing a flow sequence at line "
                                            "1, column 1) (quote a string"),
    "score garbage checkpoint": (lambda t: ["score", "rgc_shallow", "ventral_embedded.V4-temporal", "--checkpoint",
                                            str(_garbage(t))], "garbage.pt: not a readable PyTorch file of tensors"),
    # --out naming a file: "OUT: File exists", mkdir's words, which read as if the folder were there and in use
    "score --out a file": (lambda t: ["score", "nosuch", "ventral_embedded.V4-temporal", "--out", str(_a_file(t))],
                           "{t}/a_file: is a file, not a folder (--out names the folder for figures and summaries)"),
    "dynamics --out a file": (lambda t: ["dynamics", "linear", "--no-store", "--out", str(_a_file(t))],
                              "{t}/a_file: is a file, not a folder (--out names the folder"),
    "fit --out a file": (lambda t: ["fit", "ln", "--data", str(_recording(t)), "--out", str(_a_file(t)), "--quiet"],
                         "--out {t}/a_file: is a file, not a folder (zoo fit writes its checkpoint, weights and metrics "
                         "into a folder)"),
    # hashed for the record before it was read: 'PATH: No such file or directory', naming no option, after the model
    "score a missing checkpoint": (lambda t: ["score", "rgc_shallow", "ventral_embedded.V4-temporal", "--checkpoint",
                                              str(t / "gone.pt")], "error: checkpoint {t}/gone.pt does not exist"),
    "score a folder as checkpoint": (lambda t: ["score", "ln", "retina_embedded.osr", "--checkpoint", str(t)],
                                     "error: checkpoint {t} is a folder, not a file: give the file in it (it holds no "
                                     ".pt file)"),
    # a misspelt name was answered with the whole list, without the close match that zoo info and zoo fit suggest
    "score a misspelt model": (lambda t: ["score", "rgc_shalow", "ventral_embedded.V4-temporal"],
                               "unknown model 'rgc_shalow'; expected a registered ConvRNN or timm:<name> for a timm "
                               "model; did you mean rgc_shallow, ugrnn_shallow? (known: cornet_rt, "),
    "run a misspelt model": (lambda t: ["run", "--models", "rgc_shalow", "--db", f"sqlite:///{t / 'a.sqlite'}"],
                             "unknown model 'rgc_shalow'; did you mean rgc_shallow, ugrnn_shallow? (known: "),
    "run a misspelt benchmark": (lambda t: ["run", "--benchmarks", "ventral_embedded.V4-temporl", "--db",
                                            f"sqlite:///{t / 'a.sqlite'}"],
                                 "unknown benchmark 'ventral_embedded.V4-temporl'; did you mean "
                                 "ventral_embedded.V4-temporal, ventral_embedded.IT-temporal"),
    # names typed in another case got no suggestion: difflib rated 'BNCNN' 0 against 'bncnn'
    "score a model in capitals": (lambda t: ["score", "BNCNN", "retina_embedded.osr"],
                                  "unknown retina model 'BNCNN'; retina_embedded.osr scores retina models; did you "
                                  "mean bncnn? (known: bncnn, "),
    "run a benchmark in another case": (lambda t: ["run", "--benchmarks", "Retina_Embedded.OSR", "--db",
                                                   f"sqlite:///{t / 'a.sqlite'}"],
                                        "unknown benchmark 'Retina_Embedded.OSR'; did you mean retina_embedded.osr? "
                                        "(known: "),
    # PyTorch's "Output size is too small" traceback from the first forward (zoo info's FLOPs count, zoo train's
    # first batch): a pool with an integer padding shrinks a side below 1
    "info --image-size below the spec's smallest": (lambda t: ["info", str(_padded_pool_spec(t)), "--image-size", "8"],
                                                    "--image-size 8: padpool needs at least 13 px (its conv2 output "
                                                    "would be 0x0)"),
    "train --image-size below the spec's smallest": (
        lambda t: ["train", str(_padded_pool_spec(t)), "--data", str(_image_folder(t)), "--out", str(t / "run"),
                   "--image-size", "12", "--epochs", "1", "--batch-size", "2", "--workers", "0", "--quiet"],
        "--image-size 12: padpool needs at least 13 px (its conv2 output would be 0x0)"),
    # named the lock file beside it, "/proc/nope.lock: No such file or directory", and no option
    "fit --out that cannot be made": (lambda t: ["fit", "ln", "--data", "embedded:whitenoise", "--out", "/proc/nope",
                                                 "--quiet"],
                                      "--out /proc/nope: cannot be made (No such file or directory: /proc/nope.lock)"),
    # named no folder: "submission: metadata.yaml is missing"
    "submit an empty folder": (lambda t: ["submit", str(_empty_folder(t)), "--db", f"sqlite:///{t / 'a.sqlite'}",
                                          "--store", str(t / "store")],
                               "submission {t}/empty: metadata.yaml is missing (fields: name, "),
}


def _padded_pool_spec(tmp_path):
    """Two layers, each with a 3x3 stride-2 pool without padding (PyTorch's, not TensorFlow-SAME): 13 px images are
    the smallest that leave conv2 a position (13 -> 7 -> 3 -> 3 -> 1)."""
    spec = {"name": "padpool", "n_steps": 3, "image_steps": 3, "num_classes": 2,
            "layers": [{"name": "conv1", "channels": 4, "kernel": 3, "stride": 2,
                        "pool": {"kernel": 3, "stride": 2, "padding": 0}},
                       {"name": "conv2", "channels": 4, "kernel": 3, "pool": {"kernel": 3, "stride": 2, "padding": 0}}]}
    path = tmp_path / "padpool.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _image_folder(tmp_path):
    from neurozoo.convrnn.training.synthetic import write_image_folder

    return write_image_folder(tmp_path / "data", n_classes=2, per_class=2, val_per_class=1, size=16)


def _empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def _trained_as_timedecay(tmp_path):
    """A zoo train checkpoint's layout (weights, classes, config naming the model) of timedecay_shallow."""
    import torch

    from neurozoo import convrnn

    path = tmp_path / "best.pth"
    model = convrnn.create_model("timedecay_shallow", width_multiplier=0.125, num_classes=3)
    torch.save({"model": model.state_dict(), "epoch": 1, "global_step": 4, "classes": ["n1", "n2", "n3"],
                "config": {"model": "timedecay_shallow", "overrides": {"width_multiplier": 0.125}}}, path)
    return path


def _other_width(tmp_path):
    import torch

    from neurozoo import convrnn

    path = tmp_path / "w025.pt"
    torch.save(convrnn.create_model("rgc_shallow", width_multiplier=0.25).state_dict(), path)
    return path


def _a_file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("")
    return path


def _recording(tmp_path, T=2500):
    """A recording long enough to fit on (5 blocks that each leave validation frames)."""
    import numpy as np

    from neurozoo.datasets.retina_h5 import write_experiment

    rng = np.random.default_rng(0)
    stimulus = rng.standard_normal((T, 50, 50)).astype("f4")
    train = {"stimulus": stimulus, "time": np.arange(T) * 0.01, "response": {"firing_rate_10ms": rng.random((2, T))}}
    trials = rng.random((2, 1, 100)) + 0.01 * rng.random((2, 3, 100))
    test = {"stimulus": stimulus[:100], "time": np.arange(100) * 0.01, "response": {"firing_rate_10ms": trials.mean(1)},
            "repeats": {"cell01": trials[0], "cell02": trials[1]}}
    return write_experiment(tmp_path / "rec.h5", train=train, test=test)


def _garbage(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"garbage, not a checkpoint")
    return path


import pytest  # noqa: E402


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_gets_a_one_line_error_and_exit_2(case, tmp_path, capsys):
    argv, expected = BAD_INPUT[case]
    expected = expected.replace("{t}", str(tmp_path))
    assert main(argv(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`zoo list | head -1`: the pipe's reader is gone before zoo writes; zoo stops quietly with exit status 1."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # the reader has left before zoo writes its first line
    done = subprocess.run([sys.executable, "-m", "neurozoo.leaderboard.cli", "list", "--kind", "models"],
                          stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write)
    assert done.returncode == 1 and done.stderr == ""


def test_an_unusable_output_path_is_one_line_not_a_traceback(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["dynamics", "linear", "--steps", "10", "--points", "4", "--no-store", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"zoo dynamics: error: {blocker / 'sub'}: Not a directory" and "Traceback" not in err


def test_zoo_score_checks_its_output_folder_before_scoring(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    db = tmp_path / "results.sqlite"
    assert main(["score", "ln", "retina_embedded.whitenoise-heldout", "--db", f"sqlite:///{db}",
                 "--out", str(blocker / "sub")]) == 2
    assert capsys.readouterr().err == f"zoo score: error: {blocker / 'sub'}: Not a directory\n"
    assert not db.exists()  # nothing fitted, scored or stored


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_gpu_device_on_a_machine_without_one_is_refused_before_any_work(tmp_path, capsys):
    db = tmp_path / "results.sqlite"
    assert main(["score", "ln", "retina_embedded.whitenoise-heldout", "--device", "cuda", "--db", f"sqlite:///{db}"]) == 2
    assert capsys.readouterr().err == "zoo score: error: --device cuda: this torch build or machine has no CUDA GPU\n"
    assert not db.exists()


def test_a_negative_nice_without_privilege_is_one_line(tmp_path, capsys, monkeypatch):
    """`zoo work --nice -5` as a normal user had ended in os.nice's PermissionError traceback."""
    import os

    def refuse(increment):
        raise PermissionError(1, "Operation not permitted")

    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    LeaderboardDB(url).enqueue("m", "b", {"family": "convrnn"})
    monkeypatch.setattr(os, "nice", refuse)
    assert main(["work", "--db", url, "--nice", "-5", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--nice -5" in err and "Traceback" not in err, err


def test_token_list_shows_ids_users_and_states_but_never_the_secret(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    tokens = _create_tokens(url, ("dave", "erin", "dave"), capsys)
    assert main(["token", "revoke", tokens[0], "--db", url]) == 0
    capsys.readouterr()

    assert main(["token", "list", "--db", url]) == 0
    out = capsys.readouterr().out
    header, rule, *rows = out.splitlines()
    assert header.split() == ["id", "user", "sha256", "prefix", "created", "revoked"]
    cells = [row.split() for row in rows]
    assert [(c[0], c[1], c[-1]) for c in cells] == [("1", "dave", "yes"), ("2", "erin", "no"), ("3", "dave", "no")]
    import hashlib

    assert [c[2] for c in cells] == [hashlib.sha256(t.encode()).hexdigest()[:8] for t in tokens]
    assert not any(token in out or token[:8] in out for token in tokens)

    assert main(["token", "list", "--user", "dave", "--db", url]) == 0
    assert [row.split()[0] for row in capsys.readouterr().out.splitlines()[2:]] == ["1", "3"]
    assert main(["token", "list", "--user", "nobody", "--db", url]) == 2
    assert capsys.readouterr().err == "zoo token: error: token list: no token of user 'nobody'\n"


def test_serve_says_where_it_listens_and_a_busy_port_is_one_line(tmp_path, capsys, python_ctrl_c):
    """`zoo serve` printed nothing (a newcomer had to guess the URL), and a port in use was uvicorn's log line
    'ERROR: [Errno 98] ...' with exit 3; it now binds first, says the URL, and stops on Ctrl-C (status 130, as every command) without a traceback."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    def reusable():
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return listener

    url = f"sqlite:///{tmp_path / 'a.sqlite'}"
    # The port stays bound, not listening, for the whole test: the busy listener and then the server (both with
    # SO_REUSEADDR, as zoo serve binds) can bind it beside this socket, no other process can, and the kernel hands
    # it to no one asking for a free port. Closed before the server started, it was free for the seconds of the
    # server's start, and another test of a parallel run could be given it.
    reserved = reusable()
    reserved.bind(("127.0.0.1", 0))
    port = reserved.getsockname()[1]
    with reserved, reusable() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen(1)
        assert main(["serve", "--port", str(port), "--db", url]) == 2
        busy.close()
        err = capsys.readouterr().err
        assert err == f"zoo serve: error: --host '127.0.0.1' --port {port}: cannot listen there (Address already in use)\n"
        env = {**os.environ, "NEUROZOO_HOME": str(tmp_path / "home")}
        server = subprocess.Popen([sys.executable, "-m", "neurozoo.leaderboard.cli", "serve", "--port", str(port),
                                   "--db", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            line = server.stdout.readline()
            assert line == f"serving the leaderboard at http://127.0.0.1:{port}/ (Ctrl-C stops)\n"
            deadline = time.time() + 20
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/ranking", timeout=5) as answer:
                        assert answer.status == 200
                    break
                except OSError:
                    assert time.time() < deadline
                    time.sleep(0.2)
            server.send_signal(signal.SIGINT)
            assert server.wait(20) == 130
            assert "Traceback" not in server.stderr.read()
        finally:
            if server.poll() is None:
                server.kill()


def test_zoo_work_says_which_jobs_of_a_dead_worker_it_resumes(tmp_path, capsys, monkeypatch):
    """A worker killed mid-job (SIGKILL, a lost session) leaves its job 'running'; the next `zoo work` on this host
    hands it back and scores it again, as `zoo run` does, but said nothing of it (`zoo run` names the jobs)."""
    import subprocess
    import sys

    from neurozoo.datasets.cache import worker_name
    from neurozoo.leaderboard import worker

    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    db = LeaderboardDB(url)
    job = db.enqueue("alpha", "ventral_embedded.V4-temporal", {"m": "alpha"})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert db.claim(worker_name(dead.pid), ids=[job])["id"] == job
    monkeypatch.setattr(worker, "score_job", lambda *args, **kwargs: (_ for _ in ()).throw(ValueError("scored")))
    assert main(["work", "--db", url, "--no-progress"]) == 1  # the job scored again (and failed here)
    said = capsys.readouterr()
    assert said.err.splitlines()[0] == f"zoo work: resuming 1 job left running by a worker that died: [{job}]"
    assert said.out.splitlines()[-2:] == ["done 0, failed 1", f"see the scores on the board: zoo serve --db {url}"]
    db.dispose()


def test_a_commands_warnings_are_one_line_named_after_the_command(monkeypatch, capsys):
    """Python's default showed a user the warning code's file, line number and source line
    (`.../retina/cli.py:116: UserWarning: ...` and `result = fit(model, train, ...`)."""
    import warnings

    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.leaderboard import cli

    line = cli.warning_line("fit", warnings.formatwarning)
    assert line(UserWarning("rec.h5: few frames"), UserWarning, "/x/retina/cli.py", 116,
                "result = fit(model)") == "zoo fit: warning: rec.h5: few frames\n"
    assert line(RuntimeWarning("overflow"), RuntimeWarning, "a.py", 7, "x = 1") == "a.py:7: RuntimeWarning: overflow\n  x = 1\n"
    shown = []

    def stop(device):  # the first thing a command does: what a warning looks like while it runs
        shown.append(warnings.formatwarning(UserWarning("w"), UserWarning, "f.py", 1))
        raise UserFacingError("stopped")

    before = warnings.formatwarning
    monkeypatch.setattr(cli, "_check_device", stop)
    assert cli.main(["data", "list"]) == 2 and "zoo data: error: stopped" in capsys.readouterr().err
    assert shown == ["zoo data: warning: w\n"] and warnings.formatwarning is before  # Python's own again after it


def test_zoo_submission_indents_a_job_errors_continuation_lines(tmp_path, capsys):
    """A job's error of several lines (a failed model process: its error line, then its console) went on at column 0,
    read as lines of the listing rather than of that job's error; an empty detail left a trailing space."""
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    db = LeaderboardDB(url)
    sid = db.add_submission("sub", "/store/x", "0" * 64, {}, None, [{"model": "sub", "benchmark": "b", "spec": {}},
                                                                   {"model": "sub", "benchmark": "c", "spec": {}}])
    job = db.claim("w", max_attempts=1)
    assert db.fail(job["id"], "w", "ScoringError: failed: error: no layer\nerror: no layer\n  wrapped",
                   lease_token=job["lease_token"])
    db.dispose()
    assert main(["submission", str(sid), "--db", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:5] == ["  b: failed ScoringError: failed: error: no layer", "    error: no layer", "      wrapped",
                        "  c: queued"]


def test_zoo_submission_withdraws_and_restores_a_submission_and_shows_the_record(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    db = LeaderboardDB(url)
    sid = db.add_submission("sub", "/store/x", "0" * 64, {}, None, [{"model": "sub", "benchmark": "b", "spec": {}}])
    db.dispose()
    assert main(["submission", str(sid), "--withdraw", "--db", url]) == 2
    assert "--reason: say why" in capsys.readouterr().err
    # a reason without --withdraw was ignored: the operator believed it withdrawn
    assert main(["submission", str(sid), "--reason", "licence", "--db", url]) == 2
    assert capsys.readouterr().err == ("zoo submission: error: --reason: recorded with --withdraw or --restore only "
                                       "(without either, nothing is changed: it was ignored)\n")
    with pytest.raises(SystemExit):  # one or the other: argparse's usage error
        main(["submission", str(sid), "--withdraw", "--restore", "--db", url])
    capsys.readouterr()
    assert main(["submission", str(sid), "--withdraw", "--reason", "licence", "--by", "op", "--db", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [f"submission {sid}: withdrawn, 1 queued or running job cancelled",
                       f"submission {sid} sub ({'0' * 12}): withdrawn"]
    assert out[2].startswith("  withdraw by op at ") and out[2].endswith(": licence") and out[3] == "  b: withdrawn"
    assert main(["work", "--retry-submission", str(sid), "--db", url, "--no-progress"]) == 2
    assert f"submission {sid} is withdrawn (zoo submission {sid} --restore first)" in capsys.readouterr().err
    assert main(["submission", str(sid), "--restore", "--by", "op", "--db", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"submission {sid}: restored, 1 job queued again" and out[1].endswith("): queued")
    assert out[3].startswith("  restore by op at ") and out[4] == "  b: queued"


@pytest.mark.parametrize("name, says", [
    ("BNCNN", "unknown model 'BNCNN'; did you mean bncnn? (known: "),
    ("my_net.yaml", "unknown model 'my_net.yaml'; the zoo commands take registered ConvRNN names, not spec files: "),
])
def test_zoo_run_refuses_an_unknown_model_with_the_registrys_one_refusal_writing_nothing(name, says, tmp_path, capsys):
    """`zoo run --models` looks a name up in the ConvRNN and the retina registries, and had its own copy of the check:
    "(registered: ...)" in registry order, a spec path's hint after the list. It now gives the registries' one refusal
    (``datasets.registry.lookup``, :meth:`Registry.get`'s over both: the hint, close names, every known name sorted),
    as --benchmarks does, before it opens its database."""
    from neurozoo import convrnn, retina
    from neurozoo.benchmarks.named_models import SPEC_PATH_HINT

    db, report = tmp_path / "results.sqlite", tmp_path / "report"
    assert main(["run", "--models", f"rgc_shallow,{name}", "--db", f"sqlite:///{db}", "--report", str(report)]) == 2
    error = capsys.readouterr().err
    known = ", ".join(sorted(convrnn.list_models() + retina.list_models()))
    assert error.startswith(f"zoo run: error: {says}") and len(error.splitlines()) == 1, error
    assert error.rstrip("\n").endswith(f"(known: {known})")
    assert (SPEC_PATH_HINT in error) == name.endswith(".yaml")
    assert not db.exists() and not report.exists()


@pytest.mark.parametrize("name, says", [
    ("rgc_shalow", "unknown model 'rgc_shalow'; expected a registered ConvRNN or timm:<name> for a timm model; did you "
                   "mean rgc_shallow, ugrnn_shallow? (known: "),
    ("my_net.yaml", "unknown model 'my_net.yaml'; the zoo commands take registered ConvRNN names, not spec files: "),
])
def test_zoo_score_refuses_an_unknown_convrnn_with_the_registrys_one_refusal_writing_nothing(name, says, tmp_path,
                                                                                           capsys):
    """`zoo score MODEL` (an image benchmark) had its own copy of the check: "(ConvRNNs: ...; or timm:<name> for a
    timm model)" and a spec path's hint after the list. It now gives the registries' one refusal (zoo run --models's:
    the hint, close names, every ConvRNN sorted), before any model is built, folder made or record stored."""
    from neurozoo import convrnn
    from neurozoo.benchmarks.named_models import SPEC_PATH_HINT

    db, out = tmp_path / "results.sqlite", tmp_path / "out"
    assert main(["score", name, "ventral_embedded.V4-temporal", "--db", f"sqlite:///{db}", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"zoo score: error: {says}") and len(error.splitlines()) == 1, error
    assert error.rstrip("\n").endswith(f"(known: {', '.join(sorted(convrnn.list_models()))})")
    assert (SPEC_PATH_HINT in error) == name.endswith(".yaml")
    assert not db.exists() and not out.exists()


def test_zoo_train_names_an_unknown_model_before_a_missing_data_folder(tmp_path, capsys):
    """`zoo train rgc_shalow --data x` refused the missing data folder first, so a typo in the name surfaced only once
    the data were there (ImageNet: after minutes of listing). The name is checked first now: the registry's one
    refusal, close names and every ConvRNN; so is a spec path that is not there (`zoo train my.yaml --data x`, both
    missing, named the data folder). A spec that is there and a known name still reach the data check."""
    import shutil

    from neurozoo import convrnn
    from neurozoo.convrnn.models import SPEC_DIR

    missing = tmp_path / "no-data"
    assert main(["train", "rgc_shalow", "--data", str(missing), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert error == (f"zoo train: error: unknown ConvRNN model 'rgc_shalow'; did you mean rgc_shallow, ugrnn_shallow? "
                     f"(known: {', '.join(sorted(convrnn.list_models()))})\n")
    spec = tmp_path / "my_net.yaml"
    assert main(["train", str(spec), "--data", str(missing), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == f"zoo train: error: {spec}: no such spec file\n"
    shutil.copyfile(str(SPEC_DIR / "rgc_shallow.yaml"), spec)
    for name in ("rgc_shallow", str(spec)):
        assert main(["train", name, "--data", str(missing), "--out", str(tmp_path / "run")]) == 2
        assert f"zoo train: error: data folder {missing} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("edit, refusal", [
    (("cell_depth: 256", "cell_depth: -5"), "cell config 'cell_depth': expected a positive integer, got -5"),
    (("cell_activation: elu", "cell_activation: bogus"), "cell config 'cell_activation': unknown value 'bogus'")],
    ids=["depth", "activation"])
def test_zoo_train_refuses_a_spec_files_bad_cell_config_before_the_data_folder(edit, refusal, tmp_path, capsys):
    """A spec file's cell config is checked only as its cells are built: `zoo train my.yaml --data x` with a
    cell_depth of -5 and no x named the data folder (and with one, listed and hashed it first). The model is built on
    the meta device before the data are looked at now; --set's overrides take part (one that mends it is trained)."""
    from neurozoo.convrnn.models import SPEC_DIR

    spec, missing = tmp_path / "my_net.yaml", tmp_path / "no-data"
    spec.write_text((SPEC_DIR / "rgc_shallow.yaml").read_text().replace(*edit, 1))
    assert main(["train", str(spec), "--data", str(missing), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"zoo train: error: {spec}: spec 'rgc_shallow': layer 'conv3': {refusal}")
    assert len(error.splitlines()) == 1 and not (tmp_path / "run").exists()


def test_zoo_trains_spec_check_builds_every_spec_on_meta_without_importing_torch_dynamo():
    """check_spec_builds builds a spec's model on the meta device: the readout's normal_ there (no meta kernel, a
    Python one) imported torch._dynamo at its first call, 1-4 s before `zoo train SPEC.yaml --data x` refused x. The
    meta build skips that fill (a meta tensor holds no values); a CPU build still draws the readout from normal(0.01)."""
    import subprocess
    import sys

    check = ("import sys, torch\n"
             "from neurozoo import convrnn\n"
             "from neurozoo.convrnn.models import SPEC_DIR\n"
             "for path in sorted(SPEC_DIR.glob('*.yaml')):\n"
             "    with torch.device('meta'):\n"
             "        model = convrnn.create_model(str(path))\n"
             "    assert model.readout.weight.is_meta, path\n"
             "print(len(sorted(SPEC_DIR.glob('*.yaml'))), 'torch._dynamo' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    import torch

    from neurozoo import convrnn
    from neurozoo.convrnn.models import SPEC_DIR

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(list(SPEC_DIR.glob("*.yaml")))), "False"]
    torch.manual_seed(0)
    readout = convrnn.create_model("rgc_shallow").readout.weight
    assert abs(readout.std().item() - 0.01) < 0.001 and readout.abs().max().item() > 0.03  # normal, not truncated


def test_zoo_score_refuses_an_unknown_retina_model_with_the_registrys_one_refusal_writing_nothing(tmp_path, capsys):
    """A retina benchmark's model had its own copy of the check ("BENCHMARK scores retina models; unknown retina model
    'x'... (registered: ...)"): now the registry's one refusal, the benchmark's kind as its hint, before any fit."""
    from neurozoo import retina

    db, out = tmp_path / "results.sqlite", tmp_path / "out"
    assert main(["score", "BNCNN", "retina_embedded.osr", "--db", f"sqlite:///{db}", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error == (f"zoo score: error: unknown retina model 'BNCNN'; retina_embedded.osr scores retina models; did "
                     f"you mean bncnn? (known: {', '.join(sorted(retina.list_models()))})\n")
    assert not db.exists() and not out.exists()


@pytest.mark.parametrize("name, says", [
    ("my_v4.nc", "unknown benchmark 'my_v4.nc': that is a file, not a benchmark; zoo score and zoo run take a "
                 "registered benchmark's name: a NeuroidAssembly file of your own (.nc) is scored in Python as README's"),
    ("ventral_embedded.V4-temporl", "unknown benchmark 'ventral_embedded.V4-temporl'; did you mean "
                                    "ventral_embedded.V4-temporal, ventral_embedded.IT-temporal"),
])
def test_zoo_run_refuses_an_unknown_benchmark_as_zoo_score_does_writing_nothing(name, says, tmp_path, capsys):
    """`zoo run --benchmarks FILE.nc` went through zoo run's own check, "unknown benchmark 'FILE.nc' (registered: ...)",
    without the registry's hint that zoo score gives (where a file of one's own goes): both now give the registry's
    one refusal, zoo run's before it opens its database, so nothing is queued or reported."""
    db, report = tmp_path / "results.sqlite", tmp_path / "report"
    assert main(["run", "--benchmarks", name, "--db", f"sqlite:///{db}", "--report", str(report)]) == 2
    run_error = capsys.readouterr().err
    assert run_error.startswith(f"zoo run: error: {says}") and len(run_error.splitlines()) == 1, run_error
    assert not db.exists() and not report.exists()
    assert main(["score", "rgc_shallow", name, "--db", f"sqlite:///{tmp_path / 'score.sqlite'}"]) == 2
    score_error = capsys.readouterr().err
    assert score_error.partition(": error: ")[2] == run_error.partition(": error: ")[2]


@pytest.mark.parametrize("command", [["score", "--records"], ["reproduce", "1"]])
def test_a_command_that_reads_the_store_refuses_a_missing_sqlite_file_and_creates_none(command, tmp_path, capsys):
    """Opening a store creates it: `zoo score --records --db sqlite:///typo.sqlite` listed "0 records" and `zoo
    reproduce 1 --db ...` said "no record 1", each leaving a new, empty store behind at the misspelt path. Both only
    read a store: a --db SQLite file that does not exist is refused in one line naming it, and none is made."""
    missing = tmp_path / "typo.sqlite"
    assert main([*command, "--db", f"sqlite:///{missing}"]) == 2
    error = capsys.readouterr().err
    assert error == (f"zoo {command[0]}: error: --db 'sqlite:///{missing}': no such results store ({missing} does not "
                     "exist); zoo score, zoo run and zoo work create one, this command only reads one\n")
    assert not missing.exists()


def test_the_records_of_a_home_without_a_store_are_none_and_no_store_is_made(tmp_path, capsys, monkeypatch):
    """`zoo score --records` in a fresh home (no --db): nothing stored yet, said so, and the default store not made by
    looking; `zoo reproduce` there refuses the record, naming the store it looked in."""
    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / "home"))
    store = tmp_path / "home" / "results.sqlite"
    assert main(["score", "--records"]) == 0
    assert capsys.readouterr().out == (f"0 records: no results store at sqlite:///{store} yet (zoo score, zoo run and "
                                       "zoo work create it)\n")
    assert main(["reproduce", "3"]) == 2
    assert capsys.readouterr().err == (f"zoo reproduce: error: no results store at 'sqlite:///{store}' yet (the "
                                       "default, $NEUROZOO_HOME/results.sqlite; --db names another): zoo score, zoo "
                                       "run and zoo work create it\n")
    assert not store.exists()
    from neurozoo.benchmarks.records import ResultsStore

    ResultsStore(f"sqlite:///{store}")  # once one exists, it is read as before
    assert main(["score", "--records"]) == 0
    assert capsys.readouterr().out == f"0 records in sqlite:///{store}; zoo reproduce RECORD scores one again\n"


@pytest.mark.parametrize("name", ["rgc_intermediate", "timm:resnet18"])
def test_zoo_score_names_an_image_model_on_a_retina_benchmark_as_such_not_unknown(name, tmp_path, capsys):
    """`zoo score rgc_intermediate retina_embedded.osr` said "unknown retina model 'rgc_intermediate'" of a registered
    ConvRNN, where a retina model on an image benchmark is named as one ("bncnn is a retina model: ..."): an image
    model (a ConvRNN, timm:) is now named as such, with the benchmarks it scores on, before any fit or folder."""
    from neurozoo import retina

    db, out = tmp_path / "results.sqlite", tmp_path / "out"
    assert main(["score", name, "retina_embedded.osr", "--db", f"sqlite:///{db}", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"zoo score: error: {name} is an image model: it scores on the image benchmarks (ventral_embedded.*, "
        "cowley2023.V4, imagenet.val; see `zoo score --list`), not on retina_embedded.osr, which scores retina models "
        f"({', '.join(sorted(retina.list_models()))})\n")
    assert not db.exists() and not out.exists()


@pytest.mark.parametrize("argv, says", [
    (["--records", "--objective", "deep-retina"], "--records lists the results store's records (MODEL, BENCHMARK and "
                                                  "--db choose which) and scores nothing: --objective does not apply"),
    (["--records", "--seed", "3", "--data", "x.h5"], "and scores nothing: --seed, --data do not apply to it"),
    (["--records", "--list"], "--list lists the registered benchmarks and scores nothing: --records, --db do not "
                              "apply"),
    (["--list", "glm", "--width", "0.5"], "--list lists the registered benchmarks and scores nothing: MODEL, --width, "
                                          "--db do not apply to it"),
])
def test_zoo_score_listing_refuses_an_option_for_scoring_beside_it(argv, says, tmp_path, capsys):
    """`zoo score --records --objective deep-retina` (or --seed, --data; or --list MODEL, --list --records) listed as
    if the option were not there: each is refused in one line naming the options, no store opened or made."""
    db = tmp_path / "results.sqlite"
    assert main(["score", *argv, "--db", f"sqlite:///{db}"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("zoo score: error: ") and says in error and len(error.splitlines()) == 1, error
    assert not db.exists()


def test_zoo_score_records_says_which_half_of_the_hidden_split_a_record_scored(tmp_path, capsys):
    """zoo work (and zoo run) store an image benchmark's score on the public and on the hidden half: `zoo score
    --records` listed them as two rows of the same model and benchmark with other values (0.1142 and 0.0149), nothing
    telling them apart. A column says the half, "all" for a record of every stimulus (zoo score's)."""
    from neurozoo.benchmarks.records import ResultsStore, ScoreRecord

    db = f"sqlite:///{tmp_path / 'my results' / 'r.sqlite'}"
    (tmp_path / "my results").mkdir()
    v4 = "ventral_embedded.V4-temporal"
    ResultsStore(db).add_many([ScoreRecord("mynet", v4, 0.1142, settings={"split": "public"}),
                               ScoreRecord("mynet", v4, 0.0149, settings={"split": "hidden"}),
                               ScoreRecord("mynet", v4, 0.05, settings={})])
    assert main(["score", "--records", "--db", db]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["record", "scored", "(UTC)", "model", "benchmark", "value", "stimuli"]
    assert [line.split()[-3:] for line in lines[2:5]] == [["0.1142", "public", "half"], ["0.0149", "hidden", "half"],
                                                         [v4, "0.0500", "all"]]
    # the command it gives runs as copied: the --db URL of a folder with a space was not quoted
    assert lines[-1] == f"3 records in {db}; zoo reproduce RECORD --db '{db}' scores one again"


def test_zoo_score_records_of_a_model_recorded_under_longer_names_names_them(tmp_path, capsys):
    """`zoo score --records glm` listed 0 records, no more, where the store holds 'glm (deep-retina objective)' (MODEL
    keeps one recorded name): it now names the recorded names that begin with MODEL, to give one of them."""
    from neurozoo.benchmarks.records import ResultsStore, ScoreRecord

    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    ResultsStore(db).add_many([ScoreRecord(name, bench, 0.5) for name, bench in [
        ("glm (deep-retina objective)", "retina_embedded.whitenoise-heldout"),
        ("glm (observed spike history)", "retina_embedded.naturalscene-heldout"), ("ln", "retina_embedded.osr")]])
    assert main(["score", "--records", "glm", "--db", db]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"0 records in {db}; zoo reproduce RECORD --db {db} scores one again",
        "MODEL 'glm' keeps the records of that recorded name only; the store also has 'glm (deep-retina objective)', "
        "'glm (observed spike history)': give one of them, quoted"]
    assert main(["score", "--records", "glm", "retina_embedded.osr", "--db", db]) == 0  # none of glm's there
    assert capsys.readouterr().out == f"0 records in {db}; zoo reproduce RECORD --db {db} scores one again\n"
    assert main(["score", "--records", "glm (deep-retina objective)", "--db", db]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[-1] == f"1 record in {db}; zoo reproduce RECORD --db {db} scores one again" and len(listed) == 4


@pytest.mark.parametrize("models, benches, says", [
    ("rgc_intermediate,ln", "retina_embedded.osr", "--models rgc_intermediate: an image model, and none of the "
     "benchmarks (retina_embedded.osr) scores image models: it would not be scored; name an image benchmark in "
     "--benchmarks (zoo score --list) or leave the model out"),
    ("ln", "ventral_embedded.V4-temporal,cowley2023.V4", "--models ln: a retina model, and none of the benchmarks "
     "(ventral_embedded.V4-temporal, cowley2023.V4) scores retina models: it would not be scored; name a retina "
     "benchmark in --benchmarks"),
])
def test_zoo_run_refuses_a_named_model_that_none_of_the_named_benchmarks_scores(models, benches, says, tmp_path,
                                                                                capsys):
    """`zoo run --models rgc_intermediate --benchmarks retina_embedded.osr` said "0 jobs", wrote an empty database
    and report and exited 0: a model named that no named benchmark scores is now refused, before the database."""
    db, report = tmp_path / "results.sqlite", tmp_path / "report"
    assert main(["run", "--models", models, "--benchmarks", benches, "--db", f"sqlite:///{db}", "--report",
                 str(report)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"zoo run: error: {says}") and len(error.splitlines()) == 1, error
    assert not db.exists() and not report.exists()


def test_zoo_work_stopped_says_what_it_kept_and_how_to_go_on(tmp_path, capsys, monkeypatch):
    """`zoo work` stopped by SIGTERM said only "zoo work: interrupted; signal 15" (a bare "interrupted" on Ctrl-C),
    whether the job under way was stored or handed back, where `zoo run` says what it kept and how to go on. The stop
    is raised where `zoo work` takes it: in a job (its sandbox's safe point; a Ctrl-C anywhere), and between jobs."""
    from neurozoo.benchmarks.records import ScoreRecord
    from neurozoo.leaderboard import scorer, worker
    from neurozoo.leaderboard.db import DONE, QUEUED

    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    db = LeaderboardDB(url)
    first, second = (db.enqueue(model, "ventral_embedded.V4-temporal", {"m": model}) for model in ("alpha", "beta"))
    stops = iter([None, KeyboardInterrupt("signal 15"), KeyboardInterrupt(), None])  # stored, stopped, Ctrl-C, stored

    def score(job, *args, **kwargs):
        stop = next(stops)
        if stop is not None:
            raise stop
        return ScoreRecord(model=job["model"], benchmark=job["benchmark"], value=0.5, settings={"k": 1}), None

    monkeypatch.setattr(worker, "score_job", score)
    for said in ("stopped (signal 15) with 1 of 2 jobs done and stored (1 in this run); the others are queued: run "
                 "zoo work again to score them",
                 "stopped with 0 of 1 job done and stored (0 in this run); the others are queued: run zoo work again "
                 "to score them"):
        assert main(["work", "--db", url, "--no-progress"]) == 130
        assert capsys.readouterr().err.splitlines() == [f"zoo work: interrupted; {said}"]
        assert {job["id"]: (job["status"], job["attempts"]) for job in db.jobs()} == {first: (DONE, 1),
                                                                                       second: (QUEUED, 0)}

    def stopped_after(*args, **kwargs):  # a SIGTERM as its last job was stored: taken before the next claim
        real_work(*args, **kwargs)
        raise KeyboardInterrupt("signal 15")

    real_work = scorer.work
    monkeypatch.setattr(scorer, "work", stopped_after)
    assert main(["work", "--db", url, "--no-progress"]) == 130
    assert capsys.readouterr().err.splitlines() == ["zoo work: interrupted; stopped (signal 15) with 1 of 1 job done "
                                                    "and stored (1 in this run); none is left to score: nothing was "
                                                    "lost"]
    db.dispose()


def test_device_auto_is_resolved_before_any_command_runs(tmp_path, monkeypatch):
    """``--device auto`` was resolved by zoo train and zoo search only; zoo fit, score, probe, run, work and reproduce
    passed the word to torch, which failed with a traceback inside the fit ('Expected one of cpu, cuda, ... device type
    at start of device string: auto'), or failed the job. Every command now gets the device it gives (here, without a
    GPU, the CPU), and so records it; a GPU name is checked there as before, other names are passed unchanged."""
    import argparse

    import torch

    from neurozoo.leaderboard import cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    seen = []
    for given in ("auto", "cpu", None):
        args = argparse.Namespace(command="fit", handler=lambda a: seen.append(getattr(a, "device", "none")))
        if given is not None:
            args.device = given
        assert cli._run_command(args) == 0
    assert seen == ["cpu", "cpu", "none"]


def test_zoo_fit_device_auto_fits_on_the_cpu_here_and_records_it(tmp_path, monkeypatch, capsys):
    """The end to end: ``zoo fit --device auto`` had stopped with torch's traceback before the first epoch."""
    import json

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path))
    out = tmp_path / "fit"
    assert main(["fit", "ln", "--data", "embedded:whitenoise", "--epochs", "1", "--device", "auto", "--quiet",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["provenance"]["device"] == summary["provenance"]["settings"]["device"] == "cpu"
