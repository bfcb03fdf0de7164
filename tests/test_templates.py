"""Real template campaigns: several variables through Vambe's template endpoint."""

from __future__ import annotations

import pytest

from importer.sandbox import Faults

from .conftest import PHONES, STAGE_NEW, read_results

PATH = "/api/public/whatsapp/message/send/{}/template/{}"
ROWS = [["Nombre", "Teléfono", "Correo", "Pedido", "Ciudad"],
        ["Ana", PHONES[0], "ana@example.com", "10230", "Talca"],
        ["Luis", PHONES[1], "", "10231", "Arica"],
        ["Eva", PHONES[2], "", "", "Osorno"],
        ["Sol", PHONES[3], "", "10233     urgente", "Maipú"]]
TEMPLATE = {"template_id": "pedido_en_camino",
            "variables": ["Nombre", "Pedido", {"value": "mañana"}]}


def _template_requests(server) -> list:
    return sorted((r for r in server.state.received if "/template/" in r.path),
                  key=lambda r: r.path)


def test_three_variables_go_through_the_template_endpoint(sandbox, write_config, write_csv,
                                                          invoke, tmp_path):
    """Each row: the values in order, contactName, email, stageId, [contact_metadata] as
    meta_data, and from-phone-number; a variable WhatsApp would refuse refuses the row."""
    config = write_config(sandbox.url, api={"from_phone_number": "56211111111"},
                          message=TEMPLATE, contact_metadata={"city": "Ciudad"})
    result = invoke("run", write_csv(ROWS), "--config", config)
    assert result.exit_code == 1
    requests = _template_requests(sandbox)
    assert [(r.path, r.status) for r in requests] == [
        (PATH.format(PHONES[0][1:], "pedido_en_camino"), 201),
        (PATH.format(PHONES[1][1:], "pedido_en_camino"), 201)]
    assert [r.body for r in requests] == [
        {"variables": ["Ana", "10230", "mañana"], "meta_data": {"city": "Talca"},
         "contactName": "Ana", "email": "ana@example.com", "stageId": STAGE_NEW,
         "toPhoneNumber": PHONES[0]},
        {"variables": ["Luis", "10231", "mañana"], "meta_data": {"city": "Arica"},
         "contactName": "Luis", "stageId": STAGE_NEW, "toPhoneNumber": PHONES[1]}]
    assert {t["body"]["from"] for t in sandbox.state.tickets} == {"56211111111"}
    rows = read_results(tmp_path / "clientes-import")
    assert [(r["status"], r["http_status"], r["error_code"], r["error"]) for r in rows] == [
        ("sent", "201", "", ""), ("sent", "201", "", ""),
        ("invalid", "", "template_variable_invalid",
         "the template variable 'Pedido' is empty in this row"),
        ("invalid", "", "template_variable_invalid",
         ("the template variable 'Pedido' holds more than four spaces in a row, which WhatsApp"
          " refuses"))]
    assert rows[0]["ai_contact_id"] == sandbox.state.contacts[PHONES[0][1:]]


def test_validate_previews_the_exact_template_requests(sandbox, write_config, write_csv,
                                                       invoke):
    """The preview shows where each request goes and its exact body."""
    config = write_config(sandbox.url, message=TEMPLATE)
    result = invoke("validate", write_csv(ROWS[:2]), "--config", config)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "The first request that run would send:\n"
        f"POST {PATH.format(PHONES[0][1:], 'pedido_en_camino')}\n{{\n"
        '  "variables": [\n    "Ana",\n    "10230",\n    "mañana"\n  ],\n')
    assert sandbox.state.tickets == []


def test_unknown_template_sends_are_never_resent(sandbox, write_config, write_csv, invoke,
                                                 tmp_path):
    """Answers, unknown outcomes, the ledger and resume behave as for tickets."""
    sandbox.state.faults = Faults(fail_500=1.0)
    config = write_config(sandbox.url, message=TEMPLATE)
    source = write_csv(ROWS[:3])
    assert invoke("run", source, "--config", config).exit_code == 5
    assert {r["status"] for r in read_results(tmp_path / "clientes-import")} == {"unknown"}
    sandbox.state.faults = Faults()
    assert invoke("run", source, "--config", config, "--resume").exit_code == 5
    assert set(sandbox.state.tickets_per_phone().values()) == {1}
    assert len(sandbox.state.tickets) == 2


@pytest.mark.parametrize(("changes", "message"), [
    ({"message": TEMPLATE, "ticket_metadata": {"order": "Pedido"}},
     ("[message] variables: templates with several variables go through Vambe's template"
      " endpoint, which takes no ticket metadata or integration data; remove"
      " [ticket_metadata], or use a single variable")),
    ({"message": {**TEMPLATE, "variable": "Nombre"}},
     "[message]: give variable (one) or variables (several), not both"),
    ({"message": {"content": "Hola", "variables": ["Nombre"]}},
     "[message]: variables go with a template (template_id or template_column)"),
    ({"message": {"template_id": "x", "variables": []}},
     "[message] variables: give at least one, in the template's order"),
    ({"message": {"template_id": "x", "variables": ["Apodo"]}},
     ("[message] variables: column 'Apodo' is not in clientes.csv (its columns: 'Nombre',"
      " 'Teléfono', 'Correo', 'Pedido', 'Ciudad')")),
])
def test_template_configs_that_cannot_work_are_refused(write_config, write_csv, invoke,
                                                       changes, message):
    """At load time, one line saying why, exit 2."""
    result = invoke("validate", write_csv(ROWS), "--config", write_config(**changes),
                    api_key=None)
    assert (result.exit_code, result.stderr) == (2, f"Error: config.toml: {message}\n")


def test_the_sandbox_template_endpoint_refuses_what_vambe_does(sandbox):
    """401 without the key; 400 for an empty variable list or an unknown stage."""
    import httpx2

    url = sandbox.url + PATH.format(PHONES[0][1:], "x")
    key = {"x-api-key": sandbox.state.api_key}
    assert httpx2.post(url, json={"variables": ["a"], "meta_data": {}}).status_code == 401
    assert httpx2.post(url, headers=key, json={"variables": [], "meta_data": {}}).status_code == 400
    bad_stage = {"variables": ["a"], "meta_data": {}, "stageId": "nope"}
    assert httpx2.post(url, headers=key, json=bad_stage).status_code == 400
    assert httpx2.post(url, headers=key, json={"variables": ["a"], "meta_data": {}}
                       ).status_code == 201
