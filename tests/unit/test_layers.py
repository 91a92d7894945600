"""Imports run downward: the import-linter contracts in pyproject.toml, over the real import graph.

The same contracts ``lint-imports`` checks; run here so that an upward import or
a cycle fails the suite. The last tests add one import to a copy of the graph
and show that each contract notices it.
"""

from __future__ import annotations

import ast
from copy import deepcopy
from pathlib import Path

import grimp
import pytest
from importlinter.api import read_configuration
from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract
from importlinter.domain.contract import Contract, ContractCheck

CONFIG = read_configuration(str(Path(__file__).parents[2] / "pyproject.toml"))
TYPES: dict[str, type[Contract]] = {
    "layers": LayersContract,
    "forbidden": ForbiddenContract,
    "acyclic_siblings": AcyclicSiblingsContract,
}
CONTRACTS = {options["name"]: options for options in CONFIG["contracts_options"]}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("registry", include_external_packages=False, cache_dir=None)


def _check(graph: grimp.ImportGraph, name: str) -> ContractCheck:
    options = CONTRACTS[name]
    contract = TYPES[options["type"]](
        name=name, session_options=CONFIG["session_options"], contract_options=options
    )
    return contract.check(deepcopy(graph), verbose=False)


def _with(graph: grimp.ImportGraph, importer: str, imported: str) -> grimp.ImportGraph:
    changed = deepcopy(graph)
    changed.add_import(importer=importer, imported=imported, line_number=1, line_contents="x")
    return changed


def test_the_contracts_cover_layers_tables_and_cycles() -> None:
    assert sorted(o["type"] for o in CONTRACTS.values()) == [
        "acyclic_siblings",
        "forbidden",
        "layers",
    ]
    layers = CONTRACTS["Domains import downward only"]["layers"]
    # The staff audit is below everything that records into it.
    assert layers[-1] == "registry.audit"
    assert layers.index("registry.sanctions") > layers.index(
        "registry.api | registry.admin | registry.web"
    )


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_the_registry_keeps_the_contract(graph: grimp.ImportGraph, name: str) -> None:
    check = _check(graph, name)
    assert check.kept, check.metadata


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("registry.sanctions.trigger", "registry.admin.session"),  # a domain imports the console
        ("registry.orgs.services", "registry.senders.services"),  # orgs ↔ senders again
        ("registry.checks.services", "registry.api.checks"),  # the check path imports its view
    ],
)
def test_an_upward_import_breaks_the_layers(
    graph: grimp.ImportGraph, importer: str, imported: str
) -> None:
    assert not _check(_with(graph, importer, imported), "Domains import downward only").kept


def test_a_cycle_inside_a_domain_breaks_the_acyclic_contract(graph: grimp.ImportGraph) -> None:
    assert "registry.checks.receipts" in graph.find_modules_directly_imported_by(
        "registry.checks.services"
    )
    changed = _with(graph, "registry.checks.receipts", "registry.checks.services")
    assert not _check(changed, "No import cycles between sibling modules").kept


def test_a_table_importing_logic_breaks_the_tables_contract(graph: grimp.ImportGraph) -> None:
    changed = _with(graph, "registry.orgs.models", "registry.senders.services")
    assert not _check(changed, "Tables import no logic").kept


def test_the_benchmarks_import_only_public_names() -> None:
    """``benchmarks/`` is outside the package: it uses what the registry exports (``FACTS``)."""
    graph = grimp.build_graph("registry", include_external_packages=False, cache_dir=None)
    private: list[str] = []
    for path in sorted((Path(__file__).parents[2] / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("registry"):
                assert node.module in graph.modules, node.module
                private += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert private == []
