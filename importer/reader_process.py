"""The process that parses a large XLSX sheet while the importer validates or sends.

``python -m importer.reader_process WORKBOOK SHEET`` writes the sheet's rows to stdout as
pickled batches (see ``read.read_in_worker``); ``read._records_from_worker`` starts it.
"""

import signal
import sys
from pathlib import Path

from .read import read_in_worker


def main() -> None:
    """Read the sheet to stdout. Ctrl-C reaches the whole process group: the importer decides
    what it means (and closes the pipe or stops this process), so it is ignored here. (The
    package's imports run before this: a Ctrl-C in that first half second still stops it.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        read_in_worker(Path(sys.argv[1]), sys.argv[2], sys.stdout.buffer)
    except BrokenPipeError:
        pass  # the importer stopped listening: its generator was closed


if __name__ == "__main__":
    main()
