"""The core stays pure: no web framework, no Google client, no network in shared/core."""

import ast
from pathlib import Path

FORBIDDEN = ("flask", "werkzeug", "google", "firebase_admin", "functions_framework", "requests", "httpx",
             "urllib", "socket", "shared.adapters", "shared.services", "functions")


def test_core_imports_nothing_impure() -> None:
    offenders = []
    for path in Path("shared/core").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] in FORBIDDEN or n.startswith(FORBIDDEN)]
    assert offenders == []
