"""The structure docs/architecture.md draws, checked against the code.

Its table names the packages and which may import which; every import in the code (at any
depth of a module, but not those made for the type checker alone) must keep to it, and no
module may take part in an import circle. Modules that promise to load no Flask (and
``crypto``, neither Flask nor SQLAlchemy) are imported in a fresh interpreter to see.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICE = ROOT / "service"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
TOP_LEVEL = frozenset({"app", "cli", "demo", "wsgi"})

# Usable without an app: from a script, a worker or a test. What they need of the web
# (the request's session, translations) is handed to them.
NO_FLASK = (
    "samleng.service.platform.db",
    "samleng.service.platform.gate",
    "samleng.service.platform.keys",
    "samleng.service.platform.mail",
    "samleng.service.platform.markdown",
    "samleng.service.platform.models",
    "samleng.service.platform.replica",
    "samleng.service.platform.trail",
    "samleng.service.platform.vault",
    "samleng.service.tlog.epochs",
    "samleng.service.tlog.store",
    "samleng.service.tlog.tiles",
    "samleng.service.tlog.witnessing",
    "samleng.service.tlog.witnesses",
    "samleng.service.signing.confirmation",
    "samleng.service.signing.dedup",
    "samleng.service.signing.identifiers",
    "samleng.service.signing.signatures",
    "samleng.service.petitions.lifecycle",
    "samleng.service.petitions.scheduler",
    "samleng.service.admin.accounts",
    "samleng.service.admin.drafts",
    "samleng.service.admin.logins",
    "samleng.service.admin.passwords",
    "samleng.service.admin.totp",
)


def documented_packages() -> dict[str, set[str]]:
    """docs/architecture.md's table: each package and the packages it may import."""
    row = re.compile(r"^\| `(?:service\.)?(\w+)` \| .+ \| (.+) \|$", re.M)
    rows = row.findall(ARCHITECTURE.read_text(encoding="utf-8"))
    return {name: set(re.findall(r"`(\w+)`", allowed)) for name, allowed in rows}


def service_packages() -> set[str]:
    return {p.parent.name for p in SERVICE.glob("*/__init__.py")}


def module_name(path: Path) -> str:
    if path.is_relative_to(SERVICE):
        parts = path.relative_to(SERVICE).with_suffix("").parts
        return ".".join(("samleng.service", *parts)).removesuffix(".__init__")
    parts = path.relative_to(ROOT / "crypto").with_suffix("").parts
    return ".".join(("samleng.crypto", *parts)).removesuffix(".__init__")


def sources() -> list[Path]:
    return sorted(
        p
        for p in [*SERVICE.rglob("*.py"), *(ROOT / "crypto").rglob("*.py")]
        if "migrations" not in p.parts and "egg-info" not in str(p)
    )


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path: Path) -> set[str]:
    """The samleng modules ``path`` imports, at any depth, except under TYPE_CHECKING."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("samleng."))
            elif isinstance(child, ast.ImportFrom) and (child.module or "").startswith("samleng"):
                assert child.level == 0 and child.module is not None
                for alias in child.names:
                    # `from samleng.service.web import public` imports a module.
                    candidate = f"{child.module}.{alias.name}"
                    found.add(candidate if candidate in MODULES else child.module)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


MODULES = {module_name(p): p for p in sources()}


def package_of(module: str) -> str:
    """``crypto``, a service package's name, or a top-level module's (``app``)."""
    parts = module.split(".")
    return "crypto" if parts[1] == "crypto" else parts[2] if len(parts) > 2 else ""


def test_the_documented_packages_are_the_code_s() -> None:
    documented = documented_packages()
    assert set(documented) == service_packages() | {"crypto"}
    assert not (service_packages() & TOP_LEVEL)
    for module in TOP_LEVEL:
        assert (SERVICE / f"{module}.py").exists(), module
        assert f"`{module}.py`" in ARCHITECTURE.read_text(), module


def test_every_import_keeps_to_the_layers() -> None:
    allowed = documented_packages()
    wrong = []
    for module, path in MODULES.items():
        mine = package_of(module)
        for imported in imports(path):
            theirs = package_of(imported)
            if mine in TOP_LEVEL or theirs == mine:
                continue
            if theirs in TOP_LEVEL or theirs not in allowed.get(mine, set()):
                wrong.append(f"{module} imports {imported}")
    assert wrong == []


def test_the_import_graph_has_no_circle() -> None:
    graph = {m: {i for i in imports(p) if i in MODULES and i != m} for m, p in MODULES.items()}
    done: set[str] = set()
    path: list[str] = []

    def walk(module: str) -> None:
        if module in path:
            circle = path[path.index(module) :] + [module]
            pytest.fail("an import circle: " + " -> ".join(circle))
        if module in done:
            return
        path.append(module)
        for imported in sorted(graph[module]):
            walk(imported)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        walk(module)


def test_service_init_imports_nothing() -> None:
    tree = ast.parse((SERVICE / "__init__.py").read_text(encoding="utf-8"))
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    for package in service_packages():
        tree = ast.parse((SERVICE / package / "__init__.py").read_text(encoding="utf-8"))
        loaded = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        # Names for annotations only; the package's modules load none of each other.
        assert all(
            isinstance(n, ast.ImportFrom) and n.module in ("__future__", "typing") for n in loaded
        ), package


def _loaded_by(module: str) -> set[str]:
    program = (
        f"import sys, {module}\n"
        "print(' '.join(m for m in ('flask', 'sqlalchemy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(result.stdout.split())


def test_crypto_loads_neither_flask_nor_sqlalchemy() -> None:
    crypto = " ".join(m for m in MODULES if package_of(m) == "crypto")
    assert _loaded_by(crypto.replace(" ", ", ")) == set()


@pytest.mark.parametrize("module", NO_FLASK)
def test_the_modules_that_promise_it_load_no_flask(module: str) -> None:
    assert "flask" not in _loaded_by(module)
