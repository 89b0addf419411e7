"""``python -m cryovalid.service serve --data DIR …`` (see cli.py)."""
import sys

from cryovalid.service.cli import main

if __name__ == "__main__":  # job processes re-import the main module: run only here
    sys.exit(main())
