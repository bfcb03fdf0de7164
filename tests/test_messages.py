"""What each request carries besides the phone: its message (plain text with placeholders, or
a template and its variable) and metadata; message settings that cannot work are refused."""

from __future__ import annotations

import pytest

from .conftest import PHONES, _run_rows


def test_message_placeholders_render_and_empty_ones_refuse_the_row(sandbox, write_config,
                                                                   write_csv, invoke, tmp_path):
    """``{Nombre}`` is filled from the row; an empty placeholder never sends "Hola !"."""
    rows = [["Nombre", "Teléfono", "Correo", "Pedido"],
            ["Ana", PHONES[0], "", " 1001 "], ["", PHONES[1], "", "1002"]]
    _, results = _run_rows(
        sandbox, write_config, write_csv, invoke, tmp_path, rows,
        message={"content": "Hola {Nombre}! Pedido {Pedido} {{confirmado}}", "ai_generated": False})
    assert sandbox.state.ticket_bodies()[0]["message"] == {
        "content": "Hola Ana! Pedido 1001 {confirmado}", "ai_generated": False}
    assert (results[1]["error_code"], results[1]["error"]) == (
        "placeholder_empty", "the message needs 'Nombre', which is empty in this row")


def test_metadata_trimmed_strings_and_empty_cells_omitted(sandbox, write_config, write_csv,
                                                          invoke):
    """Metadata values are trimmed strings, constants included; empty cells are left out."""
    rows = [["Nombre", "Teléfono", "Correo", "Empresa", "Plan", "Shopify"],
            ["Ana", PHONES[0], "", " Acme ", "", "  77  "]]
    result = invoke("run", write_csv(rows), "--config", write_config(
        sandbox.url, contact_metadata={"company": "Empresa", "plan": "Plan",
                                       "source": {"value": 2026}},
        ticket_metadata={"plan": "Plan"}, integration_data={"shopify_order_id": "Shopify"}))
    assert result.exit_code == 0, result.output
    body = sandbox.state.ticket_bodies()[0]
    assert body["contact_metadata"] == {"company": "Acme", "source": "2026"}
    assert "ticket_metadata" not in body
    assert body["integration_data"] == {"shopify_order_id": "77"}


def test_template_messages_carry_template_id_and_variable(sandbox, write_config, write_csv,
                                                          invoke, tmp_path):
    """A template goes as ``templateId`` with its variable as ``content``; per-row templates
    fall back to ``template_id``; a bad variable value refuses the row, as WhatsApp would."""
    rows = [["Nombre", "Teléfono", "Correo", "Plantilla"],
            ["Ana", PHONES[0], "", ""], ["Luis", PHONES[1], "", "reactivacion"],
            ["", PHONES[2], "", ""], ["Eva\tMar", PHONES[3], "", ""],
            ["Sol     Luna", PHONES[4], "", ""], ["Lía\nRos", PHONES[5], "", ""]]
    result, results = _run_rows(
        sandbox, write_config, write_csv, invoke, tmp_path, rows,
        message={"template_id": "confirmacion", "template_column": "Plantilla",
                 "variable": "Nombre"})
    assert [b["message"] for b in sandbox.state.ticket_bodies()] == [
        {"templateId": "confirmacion", "content": "Ana", "ai_generated": False},
        {"templateId": "reactivacion", "content": "Luis", "ai_generated": False},
    ]
    assert [(r["error_code"], r["error"]) for r in results[2:]] == [
        ("template_variable_invalid", "the template variable 'Nombre' is empty in this row"),
        ("template_variable_invalid",
         "the template variable 'Nombre' holds a tab, which WhatsApp refuses"),
        ("template_variable_invalid", ("the template variable 'Nombre' holds more than four"
                                       " spaces in a row, which WhatsApp refuses")),
        ("template_variable_invalid",
         "the template variable 'Nombre' holds a line break, which WhatsApp refuses"),
    ]
    assert "plain-text messages" not in result.stderr


def test_template_column_without_default_refuses_empty_cells(sandbox, write_config, write_csv,
                                                             invoke, tmp_path):
    """A row whose template cell is empty, with no template_id to fall back on, is invalid."""
    rows = [["Nombre", "Teléfono", "Correo", "Plantilla"], ["Ana", PHONES[0], "", ""],
            ["Luis", PHONES[1], "", "bienvenida"]]
    _, results = _run_rows(sandbox, write_config, write_csv, invoke, tmp_path, rows,
                           message={"template_column": "Plantilla"})
    assert [r["error_code"] for r in results] == ["template_missing", ""]
    assert sandbox.state.ticket_bodies()[0]["message"] == {"templateId": "bienvenida",
                                                           "ai_generated": False}


def test_plain_text_messages_are_flagged_once(sandbox, write_config, write_csv, invoke):
    """Plain text reaches only customers inside WhatsApp's 24-hour window: said once."""
    source = write_csv([["Nombre", "Teléfono", "Correo"],
                        ["Ana", PHONES[0], ""], ["Luis", PHONES[1], ""]])
    result = invoke("run", source, "--config",
                    write_config(sandbox.url, message={"content": "Hola {Nombre}"}))
    assert result.exit_code == 0, result.output
    assert result.stderr.count("plain-text messages reach only customers who wrote to you in"
                               " the last 24 hours") == 1
    assert "[message] template_id" in result.stderr


@pytest.mark.parametrize(("message", "problem"), [
    ({"content": "Hola", "template_id": "x"}, "give content (plain text) or a template, not both"),
    ({"ai_generated": True}, "needs content, or template_id / template_column"),
    ({"content": "Hola", "variable": "Nombre"},
     "variable goes with a template; plain content uses {Column} placeholders"),
])
def test_message_settings_must_make_sense(write_config, write_csv, invoke, message, problem):
    """A message is plain text or a template, never both or neither: exit 2, one line."""
    source = write_csv([["Nombre", "Teléfono", "Correo"], ["Ana", PHONES[0], ""]])
    result = invoke("validate", source, "--config", write_config(message=message), api_key=None)
    assert result.exit_code == 2
    assert result.stderr == f"Error: config.toml: [message]: {problem}\n"
