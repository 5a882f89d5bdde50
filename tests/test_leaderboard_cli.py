"""The leaderboard's commands in process: token creation, refused submissions, submission status."""
import yaml

from neurozoo.leaderboard.cli import main
from neurozoo.leaderboard.db import LeaderboardDB


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
    assert "1 job(s) queued" in capsys.readouterr().out
    assert main(["submission", "1", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "ventral_embedded.V4-temporal: queued" in out
    assert main(["submission", "7", "--db", url]) == 2
