"""``python -m lakeline.deploy ...``: the same command as ``lakeline deploy ...``."""

import sys

from lakeline.deploy.cli import main

sys.exit(main(sys.argv[1:]))
