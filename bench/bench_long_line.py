"""A CSV that is one long line (no line end): refused or read in time linear in its size.

    .venv/bin/python bench/bench_long_line.py [--sizes 4 8 16 50] [--old-up-to 8]

Two shapes of each size (MB, no line end): one cell (``xxxx...``) and many short cells
(``Nombre,Nombre,...``). Measured side by side in one run:

1. `vambe-import validate` as a user runs it (a process of its own: start-up included);
2. ``open_table`` in this process (rows 1 and 2: what validate does before refusing);
3. the bare floor: reading the bytes and decoding them as UTF-8;
4. up to ``--old-up-to`` MB, the old way of reading row 1 (codecs' StreamReader.readline,
   quadratic: 4 MB took 9 s, 50 MB over two minutes on the issue's machine).

Seconds should double with the size, never quadruple; over 16 MiB, "row 1 is longer than
16 MiB" comes within a couple of seconds.
"""

from __future__ import annotations

import argparse
import codecs
import tempfile
import time
from pathlib import Path

from _common import machine, run_importer, write_config

from importer.exceptions import InputFileError
from importer.read import open_table


def timed(action) -> tuple[float, str]:
    """(seconds, the InputFileError's text or "read") of one call."""
    started = time.perf_counter()
    try:
        action()
        outcome = "read"
    except InputFileError as error:
        outcome = str(error)
    return time.perf_counter() - started, outcome


def floor(path: Path) -> None:
    path.read_bytes().decode("utf-8")


def old_first_line(path: Path) -> None:
    with path.open("rb") as handle:
        codecs.getreader("utf-8")(handle).readline()


SHAPES = {"one cell": b"x", "short cells": b"Nombre,"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16, 50])
    parser.add_argument("--old-up-to", type=int, default=8,
                        help="time the old quadratic reader up to this many MB (0: never)")
    options = parser.parse_args()
    print(f"bench_long_line on {machine()}")
    print(f"{'shape':<12} {'MB':>3} {'validate s':>10} {'open_table s':>12} {'floor s':>7}"
          f" {'old s':>6}  outcome")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        config = folder / "config.toml"
        write_config(config, "http://127.0.0.1:9", rate=5, concurrency=8)
        for shape, piece in SHAPES.items():
            for size in options.sizes:
                source = folder / f"line{size}.csv"
                source.write_bytes(piece * (size * 1_000_000 // len(piece)))
                run_seconds, done = run_importer("validate", str(source), "--config",
                                                 str(config), "--out", str(folder / "out"))
                table_seconds, outcome = timed(lambda source=source: open_table(source))
                floor_seconds, _ = timed(lambda source=source: floor(source))
                old = "-"
                if size <= options.old_up_to:
                    old = f"{timed(lambda source=source: old_first_line(source))[0]:.2f}"
                said = (done.stderr.strip().splitlines() or [outcome])[-1]
                print(f"{shape:<12} {size:>3} {run_seconds:>10.2f} {table_seconds:>12.2f}"
                      f" {floor_seconds:>7.3f} {old:>6}  exit {done.returncode}: {said}")
                source.unlink()


if __name__ == "__main__":
    main()
