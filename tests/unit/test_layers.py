"""The headless-core rule (DESIGN section 2): nothing under cockpit/core or cockpit/daemon imports textual.

Checked twice: by importing every module in a fresh interpreter (catches indirect imports through any
dependency), and by reading every file's imports (catches imports inside functions that a plain import would
not run).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import cockpit

PACKAGE = Path(cockpit.__file__).resolve().parent
HEADLESS = ("core", "daemon")


def headless_files() -> list[Path]:
    files = [f for layer in HEADLESS for f in sorted((PACKAGE / layer).rglob("*.py"))]
    assert len(files) > 10, files
    return files


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_importing_every_core_and_daemon_module_loads_no_textual() -> None:
    modules = [module_name(f) for f in headless_files()]
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=PACKAGE.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"textual was imported: {proc.stdout.strip()[:300]}"


def imported_modules(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name)
              and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
              and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value)
    return names


def test_no_core_or_daemon_file_imports_textual_or_the_tui() -> None:
    offenders = {}
    for path in headless_files():
        bad = {m for m in imported_modules(ast.parse(path.read_text(), str(path)))
               if m.split(".")[0] == "textual" or m == "cockpit.tui" or m.startswith("cockpit.tui.")}
        if bad:
            offenders[str(path.relative_to(PACKAGE.parent))] = sorted(bad)
    assert offenders == {}


def test_the_scan_sees_every_form_of_import() -> None:
    tree = ast.parse("import textual\nfrom textual.app import App\n"
                     "def f():\n    import importlib\n    importlib.import_module('textual.widgets')\n")
    assert {"textual", "textual.app", "textual.widgets"} <= imported_modules(tree)
