"""`python -m serving`: the same command as the `serving` console script."""

import sys

from serving.cli import main

sys.exit(main())
