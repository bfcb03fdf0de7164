"""``python -m importer`` runs the ``vambe-import`` command."""

from .cli import main

main()
