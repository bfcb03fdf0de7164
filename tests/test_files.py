"""Files that are not what they claim: FIFOs, devices, huge configs, endless lines, and a
workbook reader process that is killed or sent Ctrl-C. Each ends in one line, at once."""

from __future__ import annotations

import codecs
import os
import pickle
import random
import signal
import socket
import zipfile
from pathlib import Path

import openpyxl
import pytest

from importer import read
from importer.config import MAX_CONFIG_BYTES, load_config
from importer.exceptions import ConfigError, InputFileError
from importer.read import MAX_CSV_FIELD, detect_delimiter, open_table, opt_out_cells

from .conftest import PHONES, csv_bytes, people

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "campana_noviembre.xlsx"
BIG_ROWS = 60_000


@pytest.fixture
def specials(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    """A FIFO (nobody writing to it), a Unix socket, a character device and a directory."""
    monkeypatch.chdir(tmp_path)  # a socket's path must be short: bind it relative
    fifo = tmp_path / "clientes.csv"
    os.mkfifo(fifo)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind("s.csv")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    yield {"a FIFO": fifo, "a socket": tmp_path / "s.csv",
           "a character device": Path("/dev/zero"), "a directory": folder}
    listener.close()


# ---------------------------------------------------------------- configs


def test_a_config_that_is_not_a_regular_file_is_refused_not_read(specials, write_config,
                                                                   invoke, tmp_path):
    """Opening a FIFO without a writer would block, /dev/zero never ends: both are refused
    from os.stat, before any open, and never called "not found"."""
    source = tmp_path / "real.csv"
    source.write_bytes(csv_bytes(people(1)))
    for kind, path in specials.items():
        with pytest.raises(ConfigError) as error:
            load_config(path)
        assert str(error.value) == f"{path}: is {kind}, not a file"
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    result = invoke("validate", source, "--config", fifo, api_key=None)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {fifo}: is a FIFO, not a file\n"
    result = invoke("validate", source, "--config", "/dev/zero", api_key=None)
    assert result.exit_code == 2
    assert result.stderr == "Error: /dev/zero: is a character device, not a file\n"
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nada.toml")


def test_a_config_is_read_up_to_1_mib(write_config, invoke, tmp_path):
    """A config of exactly 1 MiB loads; one byte more, or a 4 GB file, is refused unread."""
    config = write_config()
    text = config.read_bytes()
    config.write_bytes(text + b"#" * (MAX_CONFIG_BYTES - len(text) - 1) + b"\n")
    assert load_config(config).api.phone_id
    config.write_bytes(config.read_bytes() + b"\n")
    with pytest.raises(ConfigError) as error:
        load_config(config)
    assert str(error.value) == f"{config}: config file larger than 1 MiB"
    huge = tmp_path / "huge.toml"
    with huge.open("wb") as handle:
        handle.truncate(4 << 30)  # sparse: nothing written to the disk
    source = tmp_path / "clientes.csv"
    source.write_bytes(csv_bytes(people(1)))
    result = invoke("validate", source, "--config", huge, api_key=None)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {huge}: config file larger than 1 MiB\n"


# ---------------------------------------------------------------- input files


def test_an_input_that_is_not_a_regular_file_is_refused_not_missing(specials, write_config,
                                                                      invoke, tmp_path):
    """The input file and the opt-out lists: "is a FIFO, not a file", never blocking."""
    for kind, path in specials.items():
        for reading in (open_table, lambda path: list(opt_out_cells(path))):
            with pytest.raises(InputFileError) as error:
                reading(path)
            assert str(error.value) == f"{path}: is {kind}, not a file"
    config = write_config()
    fifo = specials["a FIFO"]
    result = invoke("validate", fifo, "--config", config, api_key=None)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {fifo}: is a FIFO, not a file\n"
    with pytest.raises(InputFileError, match="input file not found"):
        open_table(tmp_path / "nada.csv")


def test_a_50_mb_line_without_a_line_end_is_refused_at_once(write_config, invoke, tmp_path):
    """Row 1 is read bounded (the old line reader took minutes over 50 MB: it was
    quadratic); bench/bench_long_line.py times it."""
    source = tmp_path / "una_linea.csv"
    source.write_bytes(b"Nombre," * (50_000_000 // 7))
    result = invoke("validate", source, "--config", write_config(), api_key=None)
    assert result.exit_code == 2
    assert result.stderr == ("Error: una_linea.csv: row 1 is longer than 16 MiB: not a CSV"
                             " export anyone meant; nothing was sent\n")


def test_a_cell_over_16_mib_names_its_row(tmp_path):
    """Row 1 up to the limit is a header like any other; a huge cell below it names its own
    row (a quoted cell's line ends do not move the count)."""
    source = tmp_path / "clientes.csv"
    source.write_bytes(b"Nombre;Tel\n\"a\nb\";1\n" + b"x;" + b"y" * (MAX_CSV_FIELD + 1))
    with pytest.raises(InputFileError) as error:
        list(open_table(source).rows())
    assert str(error.value) == ("clientes.csv: row 3 holds a cell larger than 16 MiB: not an"
                                " export anyone meant; nothing was sent")
    wide = tmp_path / "ancho.csv"
    wide.write_bytes(b"Nombre\tTel\t" + b"C" * (MAX_CSV_FIELD - 20) + b"\nAna\t1\t2\n")
    table = open_table(wide)
    assert table.delimiter == "\t"
    assert [row.cells[:2] for row in table.rows()] == [("Ana", "1")]


def test_a_csv_header_wider_than_excel_is_refused(tmp_path):
    """Excel's 16,384 columns bound a CSV's header too (millions of them cost seconds)."""
    source = tmp_path / "ancho.csv"
    source.write_bytes(";".join(f"c{n}" for n in range(16_384)).encode() + b"\n1\n")
    assert len(open_table(source).headers) == 16_384
    source.write_bytes(";".join(f"c{n}" for n in range(16_385)).encode() + b"\n1\n")
    with pytest.raises(InputFileError) as error:
        open_table(source)
    assert str(error.value) == ("ancho.csv: row 1 has more than 16,384 columns, beyond"
                                " Excel's own limit; refused")


def test_row_1_is_blamed_only_for_its_own_bytes(tmp_path):
    """Bytes that do not decode after row 1's line end are their own row's fault (with a
    BOM too, whose bytes the decoder's error offsets leave out)."""
    source = tmp_path / "clientes.csv"
    source.write_bytes(codecs.BOM_UTF8 + b"Nombre;Tel\n\xffAna;1\n")
    with pytest.raises(InputFileError) as error:
        open_table(source, encoding="utf-8-sig")
    assert str(error.value) == ("clientes.csv: row 2 is not valid utf-8-sig text; check"
                                " [input] encoding")
    source.write_bytes(codecs.BOM_UTF8 + b"Nom\xffbre;Tel\nAna;1\n")
    with pytest.raises(InputFileError, match="row 1 is not valid utf-8-sig text"):
        open_table(source, encoding="utf-8-sig")


def test_the_delimiter_is_counted_outside_quotes():
    assert detect_delimiter('"Nombre;Apellido",Tel,Correo') == ","
    assert detect_delimiter('Nombre;"Tel, fijo, o celular";"Dice ""a,b,c"""') == ";"
    assert detect_delimiter("Nombre") == ","


# ---------------------------------------------------------------- the XLSX reader process


@pytest.fixture(scope="module")
def big_workbook(tmp_path_factory) -> Path:
    """A workbook over WORKER_FILE_BYTES (60,000 rows, inline strings like openpyxl's), so
    a reader process parses it: far more rows than the pipe holds, so it is mid-sheet when
    the tests reach it."""
    folder = tmp_path_factory.mktemp("big")
    plain = folder / "plain.xlsx"
    workbook = openpyxl.Workbook()
    workbook.active.title = "Clientes"
    workbook.save(plain)
    rng = random.Random(1)

    def row(number: int, *texts: str) -> str:
        return f'<row r="{number}">' + "".join(
            f'<c r="{column}{number}" t="inlineStr"><is><t>{text}</t></is></c>'
            for column, text in zip("ABC", texts, strict=False)) + "</row>"

    sheet = ['<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">',
             "<sheetData>", row(1, "Nombre", "Teléfono", "Nota")]
    sheet.extend(row(number, f"Cliente {number}", f"+56 9 8{number:07d}",
                     rng.randbytes(24).hex()) for number in range(2, BIG_ROWS + 2))
    sheet.append("</sheetData></worksheet>")
    path = folder / "big.xlsx"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = "".join(sheet).encode()
            target.writestr(item, data)
    assert path.stat().st_size >= read.WORKER_FILE_BYTES
    return path


def _readers(path: Path) -> list[int]:
    """This process's reader processes for ``path`` (Linux: /proc)."""
    found = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"importer.reader_process" in command and os.fsencode(path) in command:
                found.append(int(child))
    return found


def test_a_killed_reader_process_is_an_input_error_naming_the_file(big_workbook):
    """Killed mid-sheet (kill -9, the out-of-memory killer): a one-line error, never a
    RuntimeError, an unpickling error or a second reading in process."""
    rows = open_table(big_workbook).rows()
    assert next(rows).cells[0] == "Cliente 2"
    [reader] = _readers(big_workbook)
    os.kill(reader, signal.SIGKILL)
    with pytest.raises(InputFileError) as error:
        for _ in rows:
            pass
    assert str(error.value) == ("big.xlsx: the reader process stopped (killed by signal 9)"
                                " before the end of the sheet")
    assert _readers(big_workbook) == []


def test_ctrl_c_does_not_stop_the_reader_process(big_workbook):
    """Ctrl-C reaches the whole process group; what it means is the importer's decision,
    so the reader ignores it and every row still arrives."""
    rows = open_table(big_workbook).rows()
    assert next(rows).number == 2
    [reader] = _readers(big_workbook)
    os.kill(reader, signal.SIGINT)
    rest = list(rows)
    assert len(rest) == BIG_ROWS - 1
    assert rest[-1].number == BIG_ROWS + 1
    assert rest[-1].cells[:2] == (f"Cliente {BIG_ROWS + 1}", f"+56 9 8{BIG_ROWS + 1:07d}")
    assert _readers(big_workbook) == []


def _fake_reader(tmp_path: Path, monkeypatch, script: str, output: bytes = b"") -> None:
    """Start ``script`` (sh) in place of the reader process, for every workbook; ``cat
    output`` writes ``output``."""
    (tmp_path / "output").write_bytes(output)
    executable = tmp_path / "fake-python"
    executable.write_text(f"#!/bin/sh\ncd {tmp_path}\n{script}\n")
    executable.chmod(0o755)
    monkeypatch.setattr(read, "WORKER_FILE_BYTES", 0)
    monkeypatch.setattr(read.sys, "executable", str(executable))


def test_a_reader_killed_before_its_first_rows_did_start(tmp_path, monkeypatch):
    """Only a reader that cannot start (it exits without a word) leaves the reading to the
    importer; one killed by a signal, even before its first batch, is an error."""
    _fake_reader(tmp_path, monkeypatch, "kill -9 $$")
    with pytest.raises(InputFileError, match=r"^campana_noviembre\.xlsx: the reader process"
                                             r" stopped \(killed by signal 9\)"):
        list(open_table(SAMPLE).rows())


def test_a_reader_that_fails_says_so_in_one_line(tmp_path, monkeypatch):
    """A bug in the reader process (its "crash" message) and a reader that stops after its
    first rows are both input errors naming the file, never a RuntimeError."""
    _fake_reader(tmp_path, monkeypatch, "exec cat output",
                 pickle.dumps(("crash", "MemoryError: ")))
    with pytest.raises(InputFileError) as error:
        list(open_table(SAMPLE).rows())
    assert str(error.value) == "campana_noviembre.xlsx: the reader process failed (MemoryError: )"
    _fake_reader(tmp_path, monkeypatch, "cat output; exit 3",
                 pickle.dumps(("rows", [["Nombre", "Teléfono"], ["Ana", PHONES[0]]])))
    with pytest.raises(InputFileError) as error:
        list(open_table(SAMPLE).rows())
    assert str(error.value) == ("campana_noviembre.xlsx: the reader process stopped (exit code"
                                " 3) before the end of the sheet")


def test_issue_20_words_a_nested_config_and_an_encrypted_workbook(write_config, write_csv,
                                                                   invoke, tmp_path):
    """Found in issue 20 (item 8): "unexpected error: RecursionError" for a deeply nested
    TOML, and "is it a CSV renamed .xlsx?" for a password-protected workbook."""
    nested = tmp_path / "nested.toml"
    nested.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    result = invoke("validate", write_csv([["Teléfono"], ["+56987654321"]]), "--config",
                    nested, api_key=None)
    assert result.exit_code == 2
    assert result.stderr == ("Error: nested.toml: not a config: its tables or arrays are"
                             " nested hundreds of levels deep\n")
    locked = tmp_path / "clave.xlsx"
    locked.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4000))
    result = invoke("validate", locked, "--config", write_config(), api_key=None)
    assert result.exit_code == 2
    assert "clave.xlsx: a password-protected (encrypted) workbook" in result.stderr
