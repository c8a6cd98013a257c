"""``python -m llenergymeasure.cli`` runs the ``llem`` command line."""

from llenergymeasure.cli.app import main

if __name__ == "__main__":
    main()
