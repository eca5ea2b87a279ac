"""``python -m tlcourse.grading …``: the same subcommands as ``tlcourse …``."""

import sys

from tlcourse.grading.cli import main

sys.exit(main())
