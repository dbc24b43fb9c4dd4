"""`python -m ssd.suite ...`: run a suite (see ssd/suite/run.py; `--help` for the flags)."""

import sys

from ssd.errors import run_cli
from ssd.suite.run import main

sys.exit(run_cli(main))
