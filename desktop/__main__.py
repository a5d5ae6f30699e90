"""`python -m stemwright.desktop [gui] [FILE]` opens the desktop app."""

from __future__ import annotations

import sys

from .app import run


def main(argv: list[str] | None = None) -> int:
    """Parse `[gui] [FILE]` and run the app."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "gui":
        args = args[1:]
    files = [a for a in args if not a.startswith("-")]
    return run(files[0] if files else None)


if __name__ == "__main__":
    sys.exit(main())
