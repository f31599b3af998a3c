"""The package's structure: imports point one way, only keras_realnvp/backend imports a backend,
files stay small enough to read, and the public model API is typed."""

import ast
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keras_realnvp"
BACKENDS = {"torch", "jax", "jaxlib", "tensorflow"}
MAX_LIBRARY_LINES = 450
MAX_TOOL_LINES = 200


def _modules():
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(name, path, modules):
    """Every module of the package that `path` imports, at any depth of its code (lazy imports too)."""
    found, backends = set(), set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            backends.add(base.split(".")[0])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in modules else base)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
                backends.add(alias.name.split(".")[0])
    return {m for m in found if m in modules and m != name}, backends & BACKENDS


def _cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_import_graph_has_no_cycle():
    modules = _modules()
    graph = {name: _imports(name, path, modules)[0] for name, path in modules.items()}
    assert _cycles(graph) == []
    # and the check sees a cycle when there is one
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


def test_only_the_backend_package_imports_a_backend():
    modules = _modules()
    offenders = {
        name: sorted(backends)
        for name, path in modules.items()
        for backends in [_imports(name, path, modules)[1]]
        if backends and not name.startswith("keras_realnvp.backend")
    }
    assert offenders == {}


def test_the_hub_package_never_imports_the_models():
    modules = _modules()
    for name, path in modules.items():
        if name.startswith("keras_realnvp.hub"):
            imported = _imports(name, path, modules)[0]
            assert not {m for m in imported if m.startswith("keras_realnvp.models")}, name


@pytest.mark.parametrize("folder, limit", [(PACKAGE, MAX_LIBRARY_LINES), (ROOT / "tools", MAX_TOOL_LINES)])
def test_files_stay_small_enough_to_read(folder, limit):
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in folder.rglob("*.py")}
    assert sizes, folder
    assert {path: n for path, n in sizes.items() if n > limit} == {}


def test_the_public_model_api_is_typed():
    from keras_realnvp import Flow, RealNVP, RealNVP2D
    from keras_realnvp.hub import Preset

    methods = [
        RealNVP.__init__, RealNVP2D.__init__, RealNVP.from_preset, RealNVP.save_to_preset, RealNVP.latent_shapes,
        RealNVP.scales, Flow.log_prob, Flow.bits_per_dim, Flow.encode, Flow.decode, Flow.sample,
        Flow.sample_latents, Preset.open, Preset.build,
    ]
    for method in methods:
        signature = inspect.signature(method)
        untyped = [
            name for name, p in signature.parameters.items()
            if name not in ("self", "cls", "kwargs", "overrides") and p.annotation is inspect.Parameter.empty
        ]
        assert untyped == [], method.__qualname__
        if method.__name__ != "__init__":
            assert signature.return_annotation is not inspect.Signature.empty, method.__qualname__
