#!/usr/bin/env python3
"""Executes notebooks top to bottom with nbclient, as CI does; a failing cell fails the run.

    scripts/run-notebooks.py notebooks/*.ipynb

The notebooks read SLUICE_DEMO_DIR (a `sluice demo` directory), and the endpoint notebook
SLUICE_ENDPOINT_URL and SLUICE_TOKEN. Executed copies go to $SLUICE_NOTEBOOK_OUT when set.
"""
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main(paths):
    out = os.environ.get("SLUICE_NOTEBOOK_OUT")
    failed = []
    for path in map(Path, paths):
        book = nbformat.read(path, as_version=4)
        client = NotebookClient(book, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
            print(f"{path}: {len(book.cells)} cells ran")
        except CellExecutionError as err:
            failed.append(path)
            print(f"{path}: a cell failed:\n{err}", file=sys.stderr)
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            nbformat.write(book, Path(out) / path.name)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
