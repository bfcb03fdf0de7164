"""The docs are the manual: the README gets a newcomer started, the pages under docs/ hold the
reference, and the reference is checked against the code: every command and option, config
setting, error code, row status and exit code must be on its page, and every link must lead
somewhere."""

from __future__ import annotations

import importlib
import re
import shutil
import tomllib
import typing
from pathlib import Path

from pydantic import BaseModel

from importer.cli import cli
from importer.codes import ErrorCode, RowStatus
from importer.config import Config

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The text under the first ``## `` heading that holds ``heading``, up to the next one."""
    for part in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        if heading in part.split("\n", 1)[0]:
            return part
    raise AssertionError(f"no '## ' heading holding {heading!r}")


def code_blocks(text: str, language: str = "") -> list[str]:
    """The fenced code blocks of a text opened with this language ("sh"; "" for none)."""
    blocks, current, opened = [], [], None
    for line in text.splitlines():
        if line.startswith("```"):
            if opened is None:
                opened, current = line[3:].strip(), []
            else:
                if opened == language:
                    blocks.append("\n".join(current) + "\n")
                opened = None
        elif opened is not None:
            current.append(line)
    return blocks


def first_cells(text: str) -> list[str]:
    """The backticked names in the first cell of each table body row (``| `a`, `b` | ...``),
    header rows left out."""
    names, in_body = [], False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_body = False
        elif line.startswith("|---"):
            in_body = True
        elif in_body:
            names += re.findall(r"`([^`]+)`", line.split("|")[1])
    return names


def _options(command) -> list[str]:
    return [opt for param in command.params for opt in param.opts + param.secondary_opts
            if opt not in ("--help", "-h") and opt.startswith("-")]


def test_every_command_and_option_is_documented():
    """docs/commands.md has a section per command, and each of its options in backticks."""
    commands = page("commands.md")
    missing = [f"global {opt}" for opt in _options(cli)
               if f"`{opt}`" not in section(commands, "Global options")]
    for name, command in cli.commands.items():
        if f"## `{name}`" not in commands:
            missing.append(f"command {name}")
            continue
        text = section(commands, f"`{name}`")
        missing.extend(f"{name} {opt}" for opt in _options(command)
                       if not re.search(rf"`{re.escape(opt)}[` ]", text))
    assert missing == []


def _config_sections() -> list[tuple[str, type[BaseModel] | None]]:
    """Each config section and its model (None for the metadata tables, which hold any key)."""
    sections = []
    for name, field in Config.model_fields.items():
        if field.exclude:
            continue
        types = (field.annotation, *typing.get_args(field.annotation))
        model = next((kind for kind in types
                      if isinstance(kind, type) and issubclass(kind, BaseModel)), None)
        sections.append((name, model))
    return sections


def test_every_config_setting_is_documented():
    """docs/configuration.md has a section per config section and a table row per setting,
    and no row for a setting the config does not have."""
    configuration = page("configuration.md")
    missing, unknown = [], []
    for name, model in _config_sections():
        try:
            text = section(configuration, f"`[{name}]`")
        except AssertionError:
            missing.append(f"[{name}]")
            continue
        if model is None:
            continue
        missing.extend(f"[{name}] {setting}" for setting in model.model_fields
                       if f"| `{setting}` |" not in text)
        unknown.extend(f"[{name}] {setting}" for setting in first_cells(text)
                       if setting not in model.model_fields)
    assert (missing, unknown) == ([], [])


def test_every_error_code_and_status_is_documented():
    """docs/reports.md's tables hold exactly the codes and statuses the importer writes."""
    reports = page("reports.md")
    assert sorted(first_cells(section(reports, "Error codes"))) == sorted(ErrorCode)
    assert sorted(first_cells(section(reports, "Row statuses"))) == sorted(RowStatus)


def test_every_exit_code_is_documented():
    """docs/reports.md's exit-code table holds exactly the CLI's EXIT_* codes."""
    module = importlib.import_module("importer.cli")
    codes = {value for name, value in vars(module).items() if name.startswith("EXIT_")}
    table = section(page("reports.md"), "Exit codes")
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, flags=re.MULTILINE)}
    assert documented == codes


def test_no_error_code_is_written_as_a_bare_string():
    """Codes are written through the enums, so the lists above are the whole lists."""
    bare = []
    for path in (ROOT / "importer").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        bare += re.findall(r'(?:RowProblem\(\s*|error_code=)"[a-z_]+"', text)
    assert bare == []


def test_quick_start_has_exactly_the_two_commands():
    """The README's quick start: install-and-test, then the sandbox demo on the sample data."""
    quick_start = section(README, "Quick start")
    commands = [block.strip() for block in code_blocks(quick_start, "sh")]
    assert commands == [
        ("python3 -m venv .venv && .venv/bin/pip install -e '.[test]'"
         " && .venv/bin/python -m pytest -q && .venv/bin/python -m pytest -q -m browser -n 0"),
        (".venv/bin/vambe-import run sample_data/campana_noviembre.csv"
         " --config config.example.toml --sandbox"),
    ]
    # CI installs as the quick start does, runs ruff and mypy, then the same test command.
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    parts = commands[0].split(" && ")
    install, tests = " && ".join(parts[:2]), " && ".join(parts[2:])
    assert install in ci and tests in ci and ci.index(install) < ci.index(tests)


def test_the_quick_start_and_validate_examples_are_what_they_print(invoke, tmp_path):
    """The README's demo prints the lines the README shows; then docs/commands.md's validate
    example, run in the same folder (issue 21, item 8: it used the demo's folder, and was
    refused), prints what it shows."""
    shutil.copytree(ROOT / "sample_data", tmp_path / "sample_data")
    shutil.copy(ROOT / "config.example.toml", tmp_path / "config.example.toml")
    [demo_shown] = code_blocks(section(README, "Quick start"))
    demo = invoke("run", "sample_data/campana_noviembre.csv", "--config", "config.example.toml",
                  "--sandbox", api_key=None)
    assert demo.exit_code == 1, demo.output
    # The ledger's path is printed absolute; the README shows it from the clone's folder.
    printed = demo.output.replace(f"{tmp_path}/", "").splitlines()
    assert [line for line in demo_shown.splitlines() if line not in printed] == []

    block = page("commands.md").split("$ vambe-import validate ", 1)[1].split("```", 1)[0]
    command, *shown = block.splitlines()
    result = invoke("validate", *command.split(), api_key=None)
    assert result.exit_code == 1, result.output  # the sample holds invalid rows on purpose
    printed = result.stdout.splitlines()
    assert [line for line in shown if line != "..." and line not in printed] == []


def test_the_readme_config_example_reads_the_sample(invoke, tmp_path):
    """The README's example config loads and maps the bundled sample (it is a shorter
    config.example.toml)."""
    [example] = code_blocks(section(README, "Example config"), "toml")
    (tmp_path / "example.toml").write_text(example, encoding="utf-8")
    result = invoke("validate", ROOT / "sample_data" / "campana_noviembre.csv", "--config",
                    "example.toml", "--out", "example", api_key=None)
    assert result.exit_code == 1, result.output  # invalid rows on purpose, but no config error
    assert "45 rows: " in result.stdout


def test_the_readme_is_short_and_links_every_page():
    """A newcomer reads the README in five minutes; the reference is one click away."""
    assert len(README.encode("utf-8")) < 12_000
    assert [path.name for path in sorted(DOCS.glob("*.md"))
            if f"](docs/{path.name})" not in README] == []
    assert "](CHANGELOG.md)" in README


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a page's headings; a repeated heading gets -1, -2... as on GitHub."""
    found: set[str] = set()
    count: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} (.+)$", prose(text), flags=re.MULTILINE):
        base = slug(heading)
        found.add(f"{base}-{count[base]}" if base in count else base)
        count[base] = count.get(base, 0) + 1
    return found


def prose(text: str) -> str:
    """The text without fenced code blocks (a `# comment` there is no heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def test_every_relative_link_resolves():
    """Every relative link in README.md, CHANGELOG.md and docs/*.md leads to a file of this
    repository (and to a heading there, when it names one); no page names a path outside it."""
    broken = []
    for path in [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(ROOT)
        links = re.findall(r"\]\(([^)\s]+)\)", re.sub(r"`[^`\n]*`", "", prose(text)))
        for link in links:
            if re.match(r"[a-z]+:", link):
                continue  # https:, mailto:
            target, _, anchor = link.partition("#")
            file = (path.parent / target).resolve() if target else path
            if not file.is_relative_to(ROOT) or not file.exists():
                broken.append(f"{name}: {link}")
            elif anchor and file.suffix == ".md" and anchor not in anchors(
                    file.read_text(encoding="utf-8")):
                broken.append(f"{name}: {link} (no such heading)")
        broken.extend(f"{name}: {mention} (outside the repository)"
                      for mention in re.findall(r"(?<![\w.])((?:\.\./)+[\w./-]+)", text)
                      if not (path.parent / mention).resolve().is_relative_to(ROOT))
    assert broken == []


def test_the_changelog_names_this_version():
    """The newest release in CHANGELOG.md is the version pyproject.toml gives the package."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    newest = re.search(r"^## (\S+)", changelog, flags=re.MULTILINE)
    assert newest is not None and newest.group(1) == project["version"]
