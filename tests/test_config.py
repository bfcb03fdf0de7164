"""The TOML config: every mistake is one line naming the setting, exit 2, before anything is
sent (importer/config.py)."""

from __future__ import annotations

import re

import pytest

from .conftest import PHONES, people, read_results


@pytest.mark.parametrize(("changes", "message"), [
    ({"api": {"phone_id": "abc"}},
     ("[api] phone_id: must be the numeric WhatsApp Business phone ID, got 'abc' (for a WhatsApp"
      ' Web connection, channel = "web-whatsapp")')),
    ({"api": {"speed": 3}}, "[api] speed: unknown setting"),
    ({"defaults": {"stage_id": "etapa-1"}},
     "[defaults] stage_id: must be a stage UUID, got 'etapa-1'"),
    ({"columns": {"email": "E-mail"}},
     ("[columns] email: column 'E-mail' is not in clientes.csv (its columns: 'Nombre',"
      " 'Teléfono', 'Correo')")),
    ({"message": {"content": "Hola {Apodo}!"}},
     ("[message] content: column 'Apodo' is not in clientes.csv (its columns: 'Nombre',"
      " 'Teléfono', 'Correo')")),
    ({"message": {"content": "Hola {Nombre!"}},
     ("[message] content: unbalanced or empty brace at character 6 (write {{ or }} for a"
      " literal brace)")),
    ({"api": {"channel": "sms"}}, "[api] channel: Input should be 'whatsapp' or 'web-whatsapp'"),
    ({"columns": {"phone": None}}, "[columns] phone: required setting is missing"),
    ({"api": {"rate_limit_per_second": -1}},
     "[api] rate_limit_per_second: Input should be greater than or equal to 0"),
    ({"defaults": {"country": "Chile"}},
     "[defaults] country: must be a two-letter country code such as CL or MX, got 'Chile'"),
    ({"api": {"api_key": "secret"}},
     ("[api] api_key: the key is read from the VAMBE_API_KEY environment variable, never from"
      " the config; remove it from the file")),
])
def test_config_errors_name_the_setting(sandbox, write_config, write_csv, invoke, changes, message):
    """Every config mistake stops before sending with one line naming the setting, exit 2."""
    if changes.get("columns", {}).get("phone", "") is None:
        changes = {"columns": {"contact_name": "Nombre"}}
        path = write_config(sandbox.url)
        text = path.read_text(encoding="utf-8").replace('"phone" = "Teléfono"\n', "")
        path.write_text(text, encoding="utf-8")
    else:
        path = write_config(sandbox.url, **changes)
    source = write_csv([["Nombre", "Teléfono", "Correo"], ["Ana", PHONES[0], ""]])
    result = invoke("run", source, "--config", path)
    assert result.exit_code == 2
    assert result.stderr == f"Error: config.toml: {message}\n"
    assert sandbox.state.received == []


def test_bad_toml_and_missing_config(write_csv, invoke, tmp_path):
    """Unparseable TOML and a missing config file are one-line errors, exit 2."""
    source = write_csv([["Nombre", "Teléfono", "Correo"], ["Ana", PHONES[0], ""]])
    (tmp_path / "roto.toml").write_text("[api\nphone_id = 1\n", encoding="utf-8")
    broken = invoke("validate", source, "--config", tmp_path / "roto.toml")
    assert broken.exit_code == 2
    assert re.fullmatch(r"Error: roto\.toml: not valid TOML: .+\n", broken.stderr)
    missing = invoke("validate", source, "--config", tmp_path / "nada.toml")
    assert missing.exit_code == 2
    assert missing.stderr == f"Error: {tmp_path / 'nada.toml'}: config file not found\n"


def test_misspelt_sections_and_settings_get_a_suggestion(write_config, write_csv, invoke,
                                                         tmp_path):
    """``[colums]`` is not reported as a missing ``[columns]``."""
    path = write_config()
    text = path.read_text(encoding="utf-8").replace("[columns]", "[colums]")
    path.write_text(text, encoding="utf-8")
    source = write_csv(people(1))
    result = invoke("validate", source, "--config", path, api_key=None)
    assert result.stderr == ("Error: config.toml: [colums]: unknown section; did you mean"
                             " [columns]?\n")
    typo = write_config(api={"rate_limit_per_secnd": 5})
    result = invoke("validate", source, "--config", typo, api_key=None)
    assert result.stderr == ("Error: config.toml: [api] rate_limit_per_secnd: unknown setting;"
                             " did you mean rate_limit_per_second?\n")


@pytest.mark.parametrize(("api", "message"), [
    ({"base_url": "ftp://api.vambe.ai"},
     "[api] base_url: must be http:// or https:// and a host, got 'ftp://api.vambe.ai'"),
    ({"base_url": "https://user:pw@api.vambe.ai"},
     "[api] base_url: must not hold a user name or password (the key goes in VAMBE_API_KEY)"),
    ({"base_url": "https://api.vambe.ai/?x=1"},
     "[api] base_url: must not hold a query or a fragment, got 'https://api.vambe.ai/?x=1'"),
    ({"base_url": "https://api.vambe.ai:70000"},
     "[api] base_url: has a port outside 1-65535: 'https://api.vambe.ai:70000'"),
    ({"base_url": "https://api.vambe.ai\n.evil"},
     ("[api] base_url: must be a URL without spaces or control characters, got"
      " 'https://api.vambe.ai\\n.evil'")),
    ({"rate_limit_per_second": 5e-324},
     ("[api] rate_limit_per_second: must be 0 (no pacing) or at least 0.001 requests per"
      " second, got 5e-324")),
    ({"rate_limit_per_second": "5"}, "[api] rate_limit_per_second: Input should be a valid number"),
    ({"max_concurrency": True}, "[api] max_concurrency: Input should be a valid integer"),
    ({"timeout_seconds": "30"}, "[api] timeout_seconds: Input should be a valid number"),
])
def test_config_values_that_could_surprise_are_refused(write_config, write_csv, invoke, api,
                                                       message):
    """Every such setting is one line naming it, exit 2, nothing sent."""
    result = invoke("validate", write_csv(people(1)), "--config", write_config(api=api),
                    api_key=None)
    assert (result.exit_code, result.stderr) == (2, f"Error: config.toml: {message}\n")


def test_plain_http_to_another_machine_is_warned(write_config, write_csv, invoke, tmp_path):
    """http:// to a host that is not this machine carries the key in clear: said before."""
    from importer.config import load_config as load

    assert load(write_config("http://api.example.com")).api.plain_http_off_machine
    assert not load(write_config("http://127.0.0.1:8787")).api.plain_http_off_machine
    assert not load(write_config("http://localhost:1")).api.plain_http_off_machine


@pytest.mark.parametrize("host", ["127.1", "127.0.0.2", "2130706433", "LOCALHOST", "[::1]"])
def test_every_spelling_of_this_machine_is_this_machine(host):
    from importer.config import is_this_machine

    assert is_this_machine(host)


# ---------------------------------------------------------------- every section

@pytest.mark.parametrize(("changes", "message"), [
    ({"schedule": {"hours": "9-20", "timezone": "America/Santiago"}},
     '[schedule] hours: must be "HH:MM-HH:MM" (24-hour, start and end differ), got \'9-20\''),
    ({"schedule": {"hours": "22:00-22:00", "timezone": "America/Santiago"}},
     ('[schedule] hours: must be "HH:MM-HH:MM" (24-hour, start and end differ), got'
      " '22:00-22:00'")),
    ({"schedule": {"hours": "09:00-20:00", "timezone": "Santiago"}},
     ('[schedule] timezone: must be an IANA time zone such as "America/Santiago", got'
      " 'Santiago'")),
    ({"schedule": {"hours": "09:00-20:00"}}, "[schedule] timezone: required setting is missing"),
    ({"schedule": {"hours": "09:00-20:00", "timezone": "America/Santiago", "days": []}},
     "[schedule] days: name at least one day"),
    ({"input": {"encoding": "utf-9"}}, "[input] encoding: unknown encoding 'utf-9'"),
    ({"input": {"delimiter": ";;"}}, "[input] delimiter: must be a single character, got ';;'"),
    ({"columns": {"phone": ["Teléfono", "Teléfono"]}}, "[columns] phone: names a column twice"),
    ({"columns": {"phone": []}},
     "[columns] phone: must be a header, or a list of headers in order of preference"),
    ({"contact_metadata": {"company": "{Empresa"}},
     ("[contact_metadata] company: unbalanced or empty brace at character 1 (write {{ or }}"
      " for a literal brace)")),
    ({"dedupe": {"within_file": "latest"}},
     "[dedupe] within_file: Input should be 'first', 'last' or 'none'"),
    ({"api": {"phone_id": "123/../456"}},
     "[api] phone_id: must be the channel's phone ID, got '123/../456'"),
])
def test_a_mistake_in_any_section_is_one_line_naming_the_setting(sandbox, write_config,
                                                                 write_csv, invoke, changes,
                                                                 message):
    """[schedule], [input], [columns], metadata, [dedupe] and a phone ID that would change
    the ticket URL's path: exit 2 before the API is contacted at all."""
    result = invoke("run", write_csv(people(1)), "--config", write_config(sandbox.url, **changes))
    assert (result.exit_code, result.stderr) == (2, f"Error: config.toml: {message}\n")
    assert sandbox.state.received == []


def test_relative_paths_are_beside_the_config_not_where_it_is_run(sandbox, write_config,
                                                                 write_csv, invoke, tmp_path):
    """A campaign folder holds its config, its opt-out list and its ledger; run from another
    folder (cron, another terminal), [dedupe] exclude and [ledger] path still name the files
    beside the config."""
    campaign = tmp_path / "campana"
    campaign.mkdir()
    (campaign / "bajas.csv").write_text(f"Teléfono\n{PHONES[0]}\n", encoding="utf-8")
    config = write_config(sandbox.url, name="campana/config.toml",
                          dedupe={"exclude": ["bajas.csv"]}, ledger={"path": "envios.sqlite"})
    result = invoke("run", write_csv(people(2)), "--config", config)  # run from tmp_path
    assert result.exit_code == 0, result.output
    assert [(r["status"], r["error"]) for r in read_results(tmp_path / "clientes-import")] == [
        ("excluded", "phone is in bajas.csv (opt-outs): never contacted"), ("sent", "")]
    assert f"Ledger: {campaign / 'envios.sqlite'}\n" in result.stdout
    assert (campaign / "envios.sqlite").is_file()
