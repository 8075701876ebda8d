"""The import graph of kmm/ (drawn from the code with `ast`, function-level imports included): no circles,
nothing imports the command line or gradio, and the documented direction holds (app → kmm.pipeline →
generators / timeline / motion → ops; the models, kernels and decoders never reach back up)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "kmm"

# modules that must not reach up to the pipeline, the app or the command line (STYLE.md, dependency direction)
LOWER_LAYERS = ("kmm.errors", "kmm.config", "kmm.model", "kmm.ops", "kmm.generators", "kmm.backends", "kmm.generator_api",
                "kmm.motion", "kmm.segment", "kmm.data", "kmm.corpus", "kmm.training", "kmm.train")
UPPER_LAYERS = ("kmm.pipeline", "kmm.app_logic", "kmm.app", "kmm.cli", "kmm.card", "kmm.eval")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_names(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, tuple[str, ...]]]:
    """Every import statement anywhere in `tree`, as (origin, names): `import a.b` -> ("a.b", ()),
    `from a import b, c` -> ("a", ("b", "c")); relative imports resolved against `module`. Imports under
    `if TYPE_CHECKING:` are skipped (they never run)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # relative: from the module's package, `level - 1` packages further up
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module
            found.append((origin, tuple(alias.name for alias in node.names)))
    return found


def import_graph() -> dict[str, set[str]]:
    """{module: the kmm modules (and third-party top-level packages) it imports}. `from kmm.x import y` points
    at the module kmm.x.y when y is one, else at kmm.x."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges = set()
        for origin, names in imported_names(tree, module, path.name == "__init__.py"):
            if origin.split(".")[0] != "kmm":
                edges.add(origin.split(".")[0])
                continue
            submodules = {f"{origin}.{n}" for n in names} & set(files)
            edges |= submodules
            if len(submodules) < len(names) or not names:
                edges.add(origin)
        edges.discard(module)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _under(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_graph_sees_function_level_and_relative_imports():
    tree = ast.parse("from . import b\nfrom ..c import d\ndef f():\n    import kmm.cli\n"
                     "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import gradio\n")
    found = imported_names(tree, "kmm.x.a", is_package=False)
    assert {("kmm.x", ("b",)), ("kmm.c", ("d",)), ("kmm.cli", ())} <= set(found)
    assert "gradio" not in {origin for origin, _ in found}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_graph_covers_the_package(graph):
    assert {"kmm.cli", "kmm.pipeline", "kmm.train", "kmm.errors", "kmm.eval.evaluate"} <= set(graph)
    assert "kmm.errors" in graph["kmm.cli"]


def test_no_import_circles(graph):
    assert cycles(graph) == []


def test_nothing_in_kmm_imports_the_cli(graph):
    importers = sorted(m for m, edges in graph.items() if "kmm.cli" in edges and m != "kmm.__main__")
    assert importers == []


def test_nothing_in_kmm_imports_gradio(graph):
    assert sorted(m for m, edges in graph.items() if "gradio" in edges) == []


def test_errors_module_imports_nothing_of_ours(graph):
    assert {e for e in graph["kmm.errors"] if e.startswith("kmm")} == set()


def test_lower_layers_do_not_import_pipeline_app_or_cli(graph):
    upward = sorted((m, e) for m, edges in graph.items() if _under(m, LOWER_LAYERS)
                    for e in edges if _under(e, UPPER_LAYERS))
    assert upward == []


def test_old_error_names_still_importable():
    from kmm import errors
    from kmm.cli import CliError
    from kmm.data import DataError
    from kmm.model.weights import WeightsError
    from kmm.segment import TimelineError

    assert CliError is errors.CliError and DataError is errors.DataError
    assert WeightsError is errors.WeightsError and TimelineError is errors.TimelineError
    assert issubclass(DataError, ValueError) and issubclass(TimelineError, ValueError)


def test_every_backend_has_the_generator_interface():
    """kmm.generator_api.GeneratorBackend is what the pipeline calls; each family in kmm.backends has all of it,
    with the same parameters (the pipeline passes `fixed` / `fixed_mask` by name)."""
    import inspect

    from kmm import backends
    from kmm.generator_api import GeneratorBackend

    methods = ("text", "predict_tokens", "sample", "decode", "encode")
    for cls in (backends.MaskedBackend, backends.BammBackend, backends.LatentBackend):
        for name in methods:
            want = inspect.signature(getattr(GeneratorBackend, name)).parameters
            got = inspect.signature(getattr(cls, name)).parameters
            assert len(got) == len(want), (cls.__name__, name)
            optional = {p for p in want if want[p].default is not inspect.Parameter.empty}
            assert optional <= {p for p in got if got[p].default is not inspect.Parameter.empty}, (cls.__name__, name)
        assert "self.window =" in inspect.getsource(cls.__init__), cls.__name__


def test_readme_code_map_names_files_that_exist():
    readme = (REPO / "README.md").read_text()
    code_map = readme.split("## Code map", 1)[1].split("\n## ", 1)[0]
    paths = set(re.findall(r"(?<![\w/])((?:kmm|tests)/[\w/]*[\w]+(?:\.py)?/?|app\.py)", code_map))
    assert len(paths) > 30
    assert sorted(p for p in paths if not (REPO / p).exists()) == []
    # every generator family's model, decoding and training files are on the map
    for path in ("kmm/generators/kmm/model.py", "kmm/generators/bamm/model.py", "kmm/generators/motion_mamba/model.py", "kmm/generators/kmm/sampling.py",
                 "kmm/generators/bamm/decoding.py", "kmm/generators/motion_mamba/diffusion.py", "kmm/train.py", "kmm/generators/motion_mamba/train.py"):
        assert path in paths
