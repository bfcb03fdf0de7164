"""``vambe-import validate``: the reports run would write, nothing sent, and a preview."""

from __future__ import annotations

from .conftest import PHONES, read_results


def test_validate_sends_nothing_and_marks_valid_rows(sandbox, write_config, write_csv, invoke,
                                                     tmp_path):
    """``validate`` writes the same reports with ``valid`` and opens no ticket."""
    rows = [["Nombre", "Teléfono", "Correo", "Etapa"], ["a", PHONES[0], "", "Contactado"],
            ["b", "123", "", ""], ["c", PHONES[1], "", "Nada"]]
    result = invoke("validate", write_csv(rows), "--config",
                    write_config(sandbox.url, columns={"stage": "Etapa"}))
    assert result.exit_code == 1
    results = read_results(tmp_path / "clientes-import")
    assert [(r["status"], r["error_code"]) for r in results] == [
        ("valid", ""), ("invalid", "phone_too_short"), ("invalid", "stage_unknown")]
    assert sandbox.state.tickets == []
    assert [r.path for r in sandbox.state.received] == ["/api/public/pipeline"]


def test_validate_previews_the_exact_bodies_and_the_duration(sandbox, write_config, write_csv,
                                                              invoke):
    """``validate`` ends with the first bodies that would be sent and the time sending takes."""
    rows = [["Nombre", "Teléfono", "Correo"], ["Ana", "123", ""], ["Luis", PHONES[1], ""],
            ["Eva", PHONES[2], "eva@example.com"]]
    config = write_config(sandbox.url, api={"rate_limit_per_second": 0.5},
                          message={"content": "Hola {Nombre}"})
    result = invoke("validate", write_csv(rows), "--config", config)
    assert result.exit_code == 1
    preview = result.stdout.split("3 rows:")[0]
    assert preview.startswith("The first 2 requests that run would send:\n{\n")
    assert '"to_phone_number": "+56987654322"' in preview and '"content": "Hola Eva"' in preview
    assert result.stdout.endswith(
        "Sending the 2 valid rows would take about 4 s at the configured rate.\n")
    assert sandbox.state.tickets == []
