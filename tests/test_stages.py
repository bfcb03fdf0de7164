"""Stages: names and IDs resolved against the account's pipelines, or said to be unchecked."""

from __future__ import annotations

from .conftest import PHONES, STAGE_CONTACTED, STAGE_NEW, SUPPORT_NEW, _run_rows, read_results


def test_stage_names_and_ids_resolve_against_the_account(sandbox, write_config, write_csv,
                                                         invoke, tmp_path):
    """Names (any case), ``Pipeline / Stage``, UUIDs; unknown and ambiguous names are invalid."""
    rows = [["Nombre", "Teléfono", "Correo", "Etapa"],
            ["a", PHONES[0], "", "contactado"], ["b", PHONES[1], "", "Soporte / Nuevo"],
            ["c", PHONES[2], "", STAGE_CONTACTED], ["d", PHONES[3], "", ""],
            ["e", PHONES[4], "", "Nuevo"], ["f", PHONES[5], "", "Reactivación"],
            ["g", PHONES[6], "", "11111111-2222-3333-4444-555555555555"]]
    _, results = _run_rows(sandbox, write_config, write_csv, invoke, tmp_path, rows,
                           columns={"stage": "Etapa"})
    assert [b["stage_id"] for b in sandbox.state.ticket_bodies()] == [
        STAGE_CONTACTED, SUPPORT_NEW, STAGE_CONTACTED, STAGE_NEW]
    assert [r["error_code"] for r in results[4:]] == [
        "stage_ambiguous", "stage_unknown", "stage_unknown"]
    assert results[4]["error"] == ("stage name 'Nuevo' is in more than one pipeline;"
                                   " write 'Pipeline / Stage' or the stage UUID")


def test_default_stage_missing_from_account_stops_before_sending(sandbox, write_config, write_csv,
                                                                 invoke):
    """A default stage the account lacks is a config error (exit 2) and nothing is sent."""
    config = write_config(sandbox.url,
                          defaults={"stage_id": "11111111-2222-3333-4444-555555555555"})
    result = invoke("run", write_csv([["Nombre", "Teléfono", "Correo"], ["a", PHONES[0], ""]]),
                    "--config", config)
    assert result.exit_code == 2
    assert result.stderr == ("Error: config.toml: [defaults] stage_id: stage"
                             " 11111111-2222-3333-4444-555555555555 is not in the account's"
                             " pipelines (vambe-import stages lists them)\n")
    assert sandbox.state.tickets == []


def test_validate_without_key_takes_stages_as_written(write_config, write_csv, invoke, tmp_path):
    """Without VAMBE_API_KEY nothing is fetched; stage cells are not judged, and it says so."""
    rows = [["Nombre", "Teléfono", "Correo", "Etapa"], ["a", PHONES[0], "", "Contactado"]]
    result = invoke("validate", write_csv(rows), "--config",
                    write_config(columns={"stage": "Etapa"}), api_key=None)
    assert result.exit_code == 0, result.output
    assert ("Note: stages were not checked against the account (1 rows name one; 1 distinct"
            " name, not IDs: 'Contactado'): set VAMBE_API_KEY to check them") in result.stdout
    assert read_results(tmp_path / "clientes-import")[0]["status"] == "valid"
