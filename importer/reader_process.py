"""The process that parses a large XLSX sheet while the importer validates or sends.

``python -m importer.reader_process WORKBOOK SHEET`` writes the sheet's rows to stdout as
pickled batches (see ``read.read_in_worker``); ``read._records_from_worker`` starts it.
"""

import sys
from pathlib import Path

from .read import read_in_worker

if __name__ == "__main__":
    try:
        read_in_worker(Path(sys.argv[1]), sys.argv[2], sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):
        pass  # the importer stopped listening: its generator was closed, or it was stopped
