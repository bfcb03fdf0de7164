"""Opt-out lists: a customer in one is never contacted; a list that cannot be read stops."""

from __future__ import annotations

import json

from .conftest import people, read_results


def test_opted_out_phones_are_excluded_on_every_import(sandbox, write_config, write_csv, invoke,
                                                       tmp_path):
    """Rows whose phone is in an opt-out file are ``excluded`` naming it, on re-imports too."""
    (tmp_path / "bajas.csv").write_text("Nombre;Celular;Motivo\nAna;+56 9 8765 4321;pidió baja\n"
                                        "Luis;56 9 8765 4322;\nX;;\n", encoding="utf-8")
    (tmp_path / "lista.csv").write_text("987654324\n", encoding="utf-8")
    config = write_config(sandbox.url, dedupe={"exclude": ["bajas.csv", "lista.csv"]})
    source = write_csv(people(5))
    result = invoke("run", source, "--config", config)
    assert result.exit_code == 0, result.output
    results = read_results(tmp_path / "clientes-import")
    assert [(r["status"], r["error"]) for r in results] == [
        ("excluded", "phone is in bajas.csv (opt-outs): never contacted"),
        ("excluded", "phone is in bajas.csv (opt-outs): never contacted"),
        ("sent", ""),
        ("excluded", "phone is in lista.csv (opt-outs): never contacted"),
        ("sent", ""),
    ]
    assert result.stdout.startswith("5 rows: 2 sent, 0 invalid, 0 duplicate, 3 excluded,")
    again = invoke("run", write_csv(people(2), name="otra.csv"), "--config", config)
    assert again.exit_code == 0 and len(sandbox.state.tickets) == 2
    assert json.loads((tmp_path / "clientes-import" / "summary.json").read_text())["excluded"] == 3


def test_opt_out_file_problems_are_config_errors(write_config, write_csv, invoke, tmp_path):
    """A missing opt-out file, or one with no phone column, stops before anything: exit 2."""
    source = write_csv(people(1))
    missing = invoke("validate", source, "--config", write_config(dedupe={"exclude": ["x.csv"]}),
                     api_key=None)
    assert missing.stderr == (f"Error: config.toml: [dedupe] exclude: {tmp_path / 'x.csv'}"
                              " not found\n")
    (tmp_path / "bajas.csv").write_text("Nombre,Motivo\nAna,baja\n", encoding="utf-8")
    nameless = invoke("validate", source, "--config",
                      write_config(dedupe={"exclude": ["bajas.csv"]}), api_key=None)
    assert nameless.exit_code == 2
    assert nameless.stderr == ("Error: config.toml: [dedupe] exclude: bajas.csv has no column"
                               " named like a phone (its columns: 'Nombre', 'Motivo')\n")
