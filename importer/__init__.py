"""vambe-import: open one Vambe WhatsApp ticket per spreadsheet row, safely.

The library behind the ``vambe-import`` command::

    from importer import load_config, run_import, validate_file

    config = load_config("config.toml")
    summary = validate_file("clientes.csv", config, out_dir="check")
    summary = run_import("clientes.csv", config, api_key=os.environ["VAMBE_API_KEY"])
    print(summary.counts, summary.paths["results.csv"])
"""

from .config import Config, load_config
from .exceptions import ImporterError
from .job import Plan, list_stages, run_import, run_until_settled, validate_file
from .reconcile import reconcile_folder
from .report import Summary
from .version import __version__

__all__ = ["Config", "ImporterError", "Plan", "Summary", "__version__", "list_stages",
           "load_config", "reconcile_folder", "run_import", "run_until_settled", "validate_file"]
