import json

import pytest

from nas.search.journal import FAILED, OK, Journal, Trial
from search_space.errors import UserError
from search_space.registry import REGISTRY


def _trial(i, status=OK):
    spec = REGISTRY["efficientnet-edgetpu-S"].to_dict()
    ok = status == OK
    return Trial(i, [i % 2, 1, 0], spec, status, 0.5 + i / 100 if ok else None, 4.2, 0.49 if ok else None,
                 5_000_000, 1_800_000_000, 1.5, None if ok else "TrialFailed: loss became nan", {"train_loss": 0.3})


def test_append_then_read_round_trips(tmp_path):
    journal = Journal(tmp_path / "run" / "journal.jsonl")
    assert journal.read() == []
    trials = [_trial(0), _trial(1, FAILED), _trial(2)]
    for t in trials:
        journal.append(t)
    assert journal.read() == trials
    lines = journal.path.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[1])["status"] == FAILED  # one JSON object per line


def test_a_torn_last_line_is_ignored_then_cut_off(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append(_trial(0))
    journal.append(_trial(1))
    whole = journal.path.read_bytes()
    journal.path.write_bytes(whole + json.dumps({"trial": 2, "decisions": [0] * 42})[:30].encode())  # killed mid-write
    assert [t.trial for t in journal.read()] == [0, 1]
    journal.repair()
    assert journal.path.read_bytes() == whole
    journal.append(_trial(2))
    assert [t.trial for t in journal.read()] == [0, 1, 2]


def test_a_whole_record_missing_only_its_newline_is_kept(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append(_trial(0))
    journal.append(_trial(1))
    journal.path.write_bytes(journal.path.read_bytes()[:-1])  # killed between the record and its newline
    assert [t.trial for t in journal.read()] == [0, 1]
    journal.repair()
    journal.append(_trial(2))
    assert [t.trial for t in journal.read()] == [0, 1, 2]


def test_damage_before_the_end_is_a_user_error_naming_the_line(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    for i in range(3):
        journal.append(_trial(i))
    lines = journal.path.read_text().splitlines()
    lines[1] = "{not json"
    journal.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="line 2 is damaged"):
        journal.read()


def test_trials_finish_out_of_order_but_never_twice(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    for i in (0, 2, 1):  # trials in flight at once finish in any order
        journal.append(_trial(i))
    assert [t.trial for t in journal.read()] == [0, 2, 1]
    journal.append(_trial(2))
    with pytest.raises(UserError, match="line 4 holds trial 3 a second time"):
        journal.read()


def test_the_local_backend_refuses_a_journal_with_gaps(tmp_path):
    from nas.search.loop import check_sequential

    journal = Journal(tmp_path / "journal.jsonl")
    journal.append(_trial(0))
    journal.append(_trial(2))
    with pytest.raises(UserError, match="holds trial 3 at line 2.*ray backend"):
        check_sequential(journal.read(), journal.path)


def test_unwritable_journal_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot write the journal"):
        Journal(tmp_path / "file" / "journal.jsonl").append(_trial(0))


def test_trials_csv_shows_partial_budgets_only_when_there_are_some():
    from dataclasses import replace

    from nas.search.results import trial_rows

    plain = [_trial(0), _trial(1)]
    assert "proxy epochs" not in trial_rows(plain)[0]
    rung = replace(_trial(2), extra={"train_loss": 0.3, "proxy_epochs": 1})  # a Hyperband rung
    assert [row["proxy epochs"] for row in trial_rows(plain + [rung])] == ["all", "all", 1]


def test_trials_csv_has_exact_macs_and_latency():
    import csv
    import io

    from nas.common.tables import format_rows
    from nas.search.results import trial_rows

    trial = _trial(0)
    row = next(csv.DictReader(io.StringIO(format_rows(trial_rows([trial]), "csv"))))
    assert int(row["macs"]) == trial.macs and "MACs (M)" not in row
    assert float(row["latency_ms"]) == trial.latency_ms  # the journal's float, not rounded
