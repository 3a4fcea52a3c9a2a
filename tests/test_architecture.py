"""The rules of the house that code review alone would miss."""

import ast
from pathlib import Path

from tests.conftest import REPO

WEBAPP = REPO / "webapp"


def python_files(folder: Path):
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_webapp_ui_imports_streamlit():
    offenders = [
        str(path.relative_to(REPO))
        for path in python_files(WEBAPP)
        if "ui" not in path.relative_to(WEBAPP).parts[:1]
        and any(name.split(".")[0] == "streamlit" for name in imported_modules(path))
    ]
    assert offenders == []


def test_trust_remote_code_is_never_turned_on():
    for path in python_files(WEBAPP):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                assert isinstance(node.value, ast.Constant) and node.value.value is False, path


def test_pages_do_not_touch_models_directly():
    for path in python_files(REPO / "pages"):
        modules = imported_modules(path)
        assert not any(m.split(".")[0] in {"torch", "diffusers", "transformers"} for m in modules)
        assert not any(m.startswith(("webapp.loader", "webapp.backends")) for m in modules), path


def test_every_page_file_is_registered_in_app():
    app_source = (REPO / "app.py").read_text(encoding="utf-8")
    for path in python_files(REPO / "pages"):
        assert f'"app_pages/{path.name}"' in app_source, path.name
