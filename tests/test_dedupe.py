"""Duplicates within a file: rows with the same normalized phone, by [dedupe] within_file."""

from __future__ import annotations

import pytest

from .conftest import PHONES, _run_rows, read_results


@pytest.mark.parametrize(("policy", "statuses", "sent_names"), [
    ("first", ["sent", "duplicate", "sent", "duplicate"], ["a", "c"]),
    ("last", ["duplicate", "duplicate", "sent", "sent"], ["c", "d"]),
    ("none", ["sent", "sent", "sent", "sent"], ["a", "b", "c", "d"]),
])
def test_duplicates_within_the_file(sandbox, write_config, write_csv, invoke, tmp_path, policy,
                                    statuses, sent_names):
    """Rows with the same normalized phone: ``first``, ``last`` or ``none`` is sent."""
    rows = [["Nombre", "Teléfono", "Correo"], ["a", PHONES[0], ""], ["b", "9 8765 4321", ""],
            ["c", PHONES[1], ""], ["d", "56987654321", ""]]
    _, results = _run_rows(sandbox, write_config, write_csv, invoke, tmp_path, rows,
                           dedupe={"within_file": policy})
    assert [r["status"] for r in results] == statuses
    assert sorted(b["contact_name"] for b in sandbox.state.ticket_bodies()) == sent_names
    errors = {r["row"]: r["error"] for r in results if r["status"] == "duplicate"}
    expected = {"first": {"3": "same phone as row 2", "5": "same phone as row 2"},
                "last": {"2": "same phone as row 5", "3": "same phone as row 5"},
                "none": {}}[policy]
    assert errors == expected


def test_duplicates_found_among_many_phones(write_config, write_csv, invoke, tmp_path):
    """The compact phone index finds every repeat in a file larger than its first table."""
    rows = [["Nombre", "Teléfono", "Correo"]]  # 10,000 people: the index's first table
    for n in range(13_000):                    # holds 8,192, so it grows
        person = n % 10_000  # rows 10,002.. repeat the first 3,000 people
        rows.append([f"c{person}", f"+5698{person:07d}", ""])
    result = invoke("validate", write_csv(rows), "--config",
                    write_config(defaults={"phone_check": "possible"}), api_key=None)
    assert result.exit_code == 0, result.output
    results = read_results(tmp_path / "clientes-import")
    duplicates = [r for r in results if r["status"] == "duplicate"]
    assert len(duplicates) == 3_000
    assert duplicates[0]["row"] == "10002" and duplicates[0]["error"] == "same phone as row 2"
    assert duplicates[-1]["error"] == "same phone as row 3001"
