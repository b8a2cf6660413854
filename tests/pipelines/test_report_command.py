"""`edgeloop report DIR` on a folder with no rounds says so and exits non-zero, rather than a traceback."""

from __future__ import annotations

from pipelines.cli import main


def test_report_without_rounds_file_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no rounds.jsonl in" in err and str(tmp_path) in err
    assert not (tmp_path / "map_per_round.png").exists()


def test_report_of_no_finished_round_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "rounds.jsonl").write_text("")
    assert main(["report", str(tmp_path)]) == 1
    assert "holds no finished round" in capsys.readouterr().err
    assert not (tmp_path / "map_per_round.png").exists()
