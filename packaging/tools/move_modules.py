"""Move modules of the `stemwright` packages and rewrite every import and dotted name.

Used for the re-layout into subpackages (issue 14) and kept for the next one: it moves the
files with `git mv`, rewrites relative and absolute imports in the packages, tests and
packaging scripts (each `from . import a, b` of a moved module becomes its own line, keeping
the old name as an alias so the code using it is unchanged), and the dotted names in strings
(`monkeypatch.setattr("stemwright.models.zoo.catalog.x", ...)`, `-m` child processes).

    python packaging/tools/move_modules.py MAPPING.json

MAPPING.json maps old file paths to new ones: {"models/zoo.py": "models/zoo/catalog.py"}.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"models": "stemwright.models", "desktop": "stemwright.desktop",
            "resources": "stemwright.resources"}
SCAN = ("models", "desktop", "tests", "packaging")


def module_of(path: str) -> str:
    parts = Path(path).with_suffix("").parts
    name = ".".join((PACKAGES[parts[0]], *parts[1:]))
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def package_of(path: str) -> str:
    mod = module_of(path)
    return mod if Path(path).name == "__init__.py" else mod.rsplit(".", 1)[0]


def relative(from_pkg: str, target: str) -> str:
    """`target` as a relative module seen from package `from_pkg`."""
    a, b = from_pkg.split("."), target.split(".")
    common = 0
    while common < min(len(a), len(b)) and a[common] == b[common]:
        common += 1
    return "." * (1 + len(a) - common) + ".".join(b[common:])


IMPORT = re.compile(r"^(?P<indent>[ \t]*)from[ \t]+(?P<src>\.*[\w.]*)[ \t]+import[ \t]+"
                    r"(?:\((?P<paren>[^)]*)\)|(?P<plain>[^\n(]+?))[ \t]*$", re.M)


def split_names(text: str) -> list[tuple[str, str | None]]:
    out = []
    for item in re.sub(r"#[^\n]*", "", text).replace("\n", " ").split(","):
        item = item.strip()
        if not item:
            continue
        name, _, alias = item.partition(" as ")
        out.append((name.strip(), alias.strip() or None))
    return out


def rewrite(text: str, old_pkg: str | None, new_pkg: str | None,
            moves: dict[str, str]) -> str:
    def resolve(src: str) -> str:
        if not src.startswith("."):
            return src
        dots = len(src) - len(src.lstrip("."))
        base = old_pkg.split(".")
        base = base[: len(base) - (dots - 1)]
        rest = src[dots:]
        return ".".join(base + ([rest] if rest else []))

    def render(target: str, relative_form: bool) -> str:
        return relative(new_pkg, target) if relative_form and new_pkg else target

    def fix(m: re.Match) -> str:
        src = m.group("src")
        is_rel = src.startswith(".")
        if is_rel and old_pkg is None:
            return m.group(0)
        if not is_rel and not src.startswith("stemwright"):
            return m.group(0)
        target = resolve(src)
        indent = m.group("indent")
        names = split_names(m.group("paren") or m.group("plain"))
        if target in moves:  # from <moved module> import names
            return f"{indent}from {render(moves[target], is_rel)} import " + \
                ", ".join(n + (f" as {a}" if a else "") for n, a in names)
        if not any(f"{target}.{n}" in moves for n, _ in names):
            if is_rel and new_pkg and render(target, True) != src:
                return m.group(0).replace(f"from {src} ", f"from {render(target, True)} ", 1)
            return m.group(0)
        lines, keep = [], []
        for n, a in names:
            full = f"{target}.{n}"
            if full in moves:
                new = moves[full]
                parent, last = new.rsplit(".", 1)
                alias = a or n
                lines.append(f"{indent}from {render(parent, is_rel)} import {last}"
                             + (f" as {alias}" if alias != last else ""))
            else:
                keep.append(n + (f" as {a}" if a else ""))
        if keep:
            lines.insert(0, f"{indent}from {render(target, is_rel)} import {', '.join(keep)}")
        return "\n".join(lines)

    # Dotted names first, in one pass (a new name never gets rewritten again), then imports.
    names = "|".join(re.escape(o) for o in sorted(moves, key=len, reverse=True))
    text = re.sub(rf"(?<![\w.])({names})(?![\w])", lambda m: moves[m.group(1)], text)
    return IMPORT.sub(fix, text)


def main() -> int:
    mapping = json.loads(Path(sys.argv[1]).read_text())
    moves = {module_of(o): module_of(n) for o, n in mapping.items()}
    files = [p for d in SCAN for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts]
    new_path = {str(p.relative_to(ROOT)): mapping.get(str(p.relative_to(ROOT)),
                                                      str(p.relative_to(ROOT))) for p in files}
    for p in files:
        rel = str(p.relative_to(ROOT))
        in_pkg = rel.split("/")[0] in PACKAGES
        old_pkg = package_of(rel) if in_pkg else None
        new_pkg = package_of(new_path[rel]) if in_pkg else None
        text = p.read_text()
        out = rewrite(text, old_pkg, new_pkg, moves)
        if out != text:
            p.write_text(out)
    for old, new in mapping.items():
        (ROOT / new).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "mv", old, new], cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
