"""Package discovery for the `stemwright` namespace (metadata lives in pyproject.toml).

The source folders `models/`, `desktop/` and `resources/` install as `stemwright.models`,
`stemwright.desktop` and `stemwright.resources`. setuptools' automatic discovery cannot add
the `stemwright.` prefix, so the packages are listed here from the folders themselves: every
folder below them (data folders too, e.g. resources/demo/*) is a package, and every file in it
ships, so a moved or new subpackage can never be silently left out of the wheel.
"""

from pathlib import Path

from setuptools import setup

ROOTS = ("models", "desktop", "resources")
SKIP = {"__pycache__", ".pytest_cache", ".ruff_cache"}
SKIP_FILES = ("*.pyc", "*.pyo")


def _packages() -> dict[str, str]:
    here = Path(__file__).parent
    found = {}
    for root in ROOTS:
        for folder in [here / root, *sorted(p for p in (here / root).rglob("*") if p.is_dir())]:
            rel = folder.relative_to(here)
            if SKIP.intersection(rel.parts):
                continue
            found["stemwright." + ".".join(rel.parts)] = rel.as_posix()
    return found


PACKAGES = _packages()

setup(
    packages=list(PACKAGES),
    package_dir={name: path for name, path in PACKAGES.items() if name.count(".") == 1},
    package_data={name: ["*"] for name in PACKAGES},
    exclude_package_data={name: list(SKIP_FILES) for name in PACKAGES},
)
