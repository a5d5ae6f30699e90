"""Small helpers for the words the command line and the app print."""


def count(n: int, noun: str) -> str:
    """"1 song", "2 songs": a number with its noun, plural unless it is one."""
    return f"{n} {noun}{'s' * (n != 1)}"
