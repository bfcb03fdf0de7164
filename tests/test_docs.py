"""The README is the manual: every command, option and error code must be in it."""

from __future__ import annotations

import re
from pathlib import Path

from importer.cli import cli
from importer.codes import ErrorCode, RowStatus

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _long_options(command) -> list[str]:
    return [opt for param in command.params for opt in param.opts if opt.startswith("--")]


def test_every_command_and_option_is_documented():
    """Each command has a section and each of its long options appears in backticks."""
    missing = [option for option in _long_options(cli) if f"`{option}" not in README]
    for name, command in cli.commands.items():
        if f"### `{name}`" not in README:
            missing.append(f"command {name}")
        missing.extend(f"{name} {opt}" for opt in _long_options(command)
                       if f"`{opt}" not in README and opt != "--help")
    assert missing == []


def test_every_error_code_and_status_is_documented():
    """Every error code and row status the importer can write is in the README, for scripts."""
    table = README.split("### Error codes", 1)[1].split("\n## ", 1)[0]
    assert [code for code in ErrorCode if f"`{code}`" not in table] == []
    assert [status for status in RowStatus if f"`{status}`" not in README] == []


def test_no_error_code_is_written_as_a_bare_string():
    """Codes are written through the enums, so the list above is the whole list."""
    bare = []
    for path in (ROOT / "importer").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        bare += re.findall(r'(?:RowProblem\(\s*|error_code=)"[a-z_]+"', text)
    assert bare == []


def test_quick_start_has_exactly_the_two_commands():
    """The README's quick start: install-and-test, then the sandbox demo on the sample data."""
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.+?)\n```", section)
    assert commands == [
        ("python3 -m venv .venv && .venv/bin/pip install -e '.[test]'"
         " && .venv/bin/python -m pytest -q"),
        (".venv/bin/vambe-import run sample_data/campana_noviembre.csv"
         " --config config.example.toml --sandbox"),
    ]
    # CI installs as the quick start does, runs ruff and mypy, then the same test command.
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install, test = commands[0].rsplit(" && ", 1)
    assert install in ci and test in ci and ci.index(install) < ci.index(test)


def test_the_readme_validate_example_is_what_validate_prints(invoke, tmp_path, monkeypatch):
    """Issue 21, item 8: the README's validate example, run after the quick start's demo in
    the same folder (it used the demo's folder, and was refused), prints what it shows."""
    import shutil

    block = README.split("$ vambe-import validate ", 1)[1].split("```", 1)[0]
    command, *shown = block.splitlines()
    shutil.copytree(ROOT / "sample_data", tmp_path / "sample_data")
    shutil.copy(ROOT / "config.example.toml", tmp_path / "config.example.toml")
    monkeypatch.chdir(tmp_path)
    demo = invoke("run", "sample_data/campana_noviembre.csv", "--config", "config.example.toml",
                  "--sandbox", api_key=None)
    assert demo.exit_code == 1, demo.output
    result = invoke("validate", *command.split(), api_key=None)
    assert result.exit_code == 1, result.output  # the sample holds invalid rows on purpose
    printed = result.stdout.splitlines()
    missing = [line for line in shown if line != "..." and line not in printed]
    assert missing == []
