"""The import graph stays layered: drivers import no service code, backends import drivers and
shared helpers but never each other, and clients never import servers."""

from __future__ import annotations

import ast
from pathlib import Path

from pytvix.castore.composition import BLOB_SERVICES, DIRECTORY_SERVICES
from pytvix.store.composition import PATHINFO_SERVICES

SRC = Path(__file__).resolve().parents[1] / "src"
SERVERS = {
    "pytvix.castore.grpc_server",
    "pytvix.castore.http_server",
    "pytvix.store.grpc_server",
    "pytvix.store.grpc_daemon",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """module -> the pytvix modules it imports (at top level or inside functions)."""
    graph: dict[str, set[str]] = {}
    for path in (SRC / "pytvix").rglob("*.py"):
        if "_proto" in path.parts:
            continue
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[module_name(path)] = {m for m in found if m.startswith("pytvix")}
    return graph


def backends() -> set[str]:
    kinds = (BLOB_SERVICES, DIRECTORY_SERVICES, PATHINFO_SERVICES)
    return {target.partition(":")[0] for kind in kinds for target in kind.backends.values()}


GRAPH = imports()
MODULES = set(GRAPH)


def resolved(names: set[str]) -> set[str]:
    """The modules among imported names (`from a.b import c` names a.b or a.b.c)."""
    return {name for name in names if name in MODULES}


def test_drivers_import_no_service_code() -> None:
    service_code = (
        "pytvix.castore.blobservice",
        "pytvix.castore.directoryservice",
        "pytvix.store",
        "pytvix.narbridge",
        "pytvix.cli",
    )
    for module, deps in GRAPH.items():
        if module.startswith("pytvix.castore.drivers"):
            bad = sorted(d for d in resolved(deps) if d.startswith(service_code))
            assert bad == [], f"{module} imports {bad}"


def test_backends_never_import_each_other() -> None:
    known = backends()
    assert len(known) > 15
    for module in known:
        others = sorted(resolved(GRAPH[module]) & (known - {module}))
        assert others == [], f"{module} imports the backends {others}"


def test_clients_never_import_servers() -> None:
    clients = {
        m
        for m in MODULES
        if m.endswith((".grpc", ".http")) or m.startswith("pytvix.castore.drivers")
    }
    assert "pytvix.castore.blobservice.http" in clients
    for module in clients:
        bad = sorted(resolved(GRAPH[module]) & SERVERS)
        assert bad == [], f"{module} imports the servers {bad}"


def test_the_rules_see_a_violation() -> None:
    """The checks above would notice: a backend that imported a sibling shows up."""
    fake = {"pytvix.castore.blobservice.nats"} | GRAPH["pytvix.castore.blobservice.objectstore"]
    assert resolved(fake) & (backends() - {"pytvix.castore.blobservice.objectstore"})


HEAVY = ("prometheus_client", "opentelemetry")


def third_party_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_metrics_and_tracing_libraries_load_only_in_observability() -> None:
    """prometheus_client and OpenTelemetry are imported by pytvix.observability's modules only
    (loaded when metrics or tracing are turned on); its entry module, which every layer
    imports, imports neither them nor other pytvix code."""
    for path in (SRC / "pytvix").rglob("*.py"):
        if "_proto" in path.parts:
            continue
        heavy = sorted(m for m in third_party_imports(path) if m.startswith(HEAVY))
        if heavy:
            module = module_name(path)
            assert module.startswith("pytvix.observability."), f"{module} imports {heavy}"
    entry = SRC / "pytvix" / "observability" / "__init__.py"
    assert not any(m.startswith(HEAVY) for m in third_party_imports(entry))
    top_level = {
        node.module
        for node in ast.parse(entry.read_text()).body
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not {m for m in top_level if m.startswith("pytvix")}
