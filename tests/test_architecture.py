"""The house rules the code's structure keeps: no import circle among the product's modules (imports
inside functions count), each domain rule written once, the simulator outside the product, and a
repository that cites only its own files."""

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("jobs", "detectors", "schemas", "dags")


def product_files() -> dict[str, Path]:
    """module name -> file, for every Python file of the product's folders."""
    files = {}
    for folder in PRODUCT:
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imported_modules(path: Path, module: str) -> set[str]:
    """Every module `path` imports, at import time or inside a function, relative imports resolved;
    `from a import b` counts as `a.b` too (b may be a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.update([base, *(f"{base}.{alias.name}" for alias in node.names)])
    return found


def test_no_import_circle_in_the_product():
    files = product_files()
    graph = nx.DiGraph()
    for module, path in files.items():
        graph.add_node(module)
        for target in imported_modules(path, module):
            while target and target not in files:  # `a.b.name` -> the module `a.b` that defines it
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):
                graph.add_edge(module, target)
    circles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert circles == []


def test_the_product_does_not_import_the_simulator_at_import_time():
    for module, path in product_files().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in top if isinstance(n, ast.ImportFrom)}
        assert not any(n == "simulator" or n.startswith("simulator.") for n in names), module


def test_each_number_rule_is_defined_once():
    definitions = [
        (path, node.name)
        for path in product_files().values()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef) and node.name in ("e164", "national")
    ]
    assert sorted(name for _, name in definitions) == ["e164", "national"]
    assert {path.relative_to(ROOT).as_posix() for path, _ in definitions} == {"jobs/numbers.py"}


def test_the_simulator_is_not_installed_with_the_product():
    setup = (ROOT / "setup.py").read_text(encoding="utf-8")
    assert 'include=["schemas*", "detectors*", "jobs*", "conf*"]' in setup
    assert not (ROOT / "jobs" / "simulate").exists()


def test_the_repository_cites_only_its_own_files():
    texts = [p for p in ROOT.rglob("*") if p.suffix in (".py", ".md", ".yaml", ".ipynb", ".toml", ".ini")]
    texts = [p for p in texts if not {".venv", ".git", "demo", ".bench"} & set(p.relative_to(ROOT).parts)]
    design = "DESIGN" + ".md"  # spelled apart, so this file does not name it
    assert [str(p.relative_to(ROOT)) for p in texts if design in p.read_text(encoding="utf-8", errors="replace")] == []


def test_the_readme_is_one_screenful():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 150
