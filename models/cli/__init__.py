"""The `stemwright` command line: `commands` (the parser and every subcommand but training)
and `train` (`stemwright train`, `bench --training`). `main` is the console script's entry.
"""

from .commands import main

__all__ = ["main"]
