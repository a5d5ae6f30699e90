"""`python -m stemwright.models.cli ...` (torchrun and the app's child processes use it)."""

import sys

from .commands import main

sys.exit(main())
