"""The repository itself: scripts keep their run bit, the package has no import cycle, planning stays torch-free."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_shell_scripts_keep_their_run_bit():
    scripts = sorted((ROOT / "bench").glob("*.sh"))
    assert scripts, "bench/gpu.sh is there"
    modes = subprocess.run(["git", "ls-files", "-s", *map(str, scripts)], cwd=ROOT, capture_output=True, text=True)
    if modes.returncode == 0 and modes.stdout:   # in a checkout: the mode git keeps, which a clone gets
        assert all(line.startswith("100755") for line in modes.stdout.splitlines()), modes.stdout
    assert all(os.access(s, os.X_OK) for s in scripts)


def _imports() -> dict[str, set[str]]:
    """Package module -> the package modules it imports, function-local imports included."""
    names = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
             for p in (ROOT / "attrdistill").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("attrdistill"):
                found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in names else node.module
                          for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("attrdistill")}
        graph[name] = {m for m in found if m in names and m != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if not state.get(nxt) and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return None
    return next((c for n in sorted(graph) if not state.get(n) and (c := visit(n, [])) is not None), None)


def test_no_import_cycles_counting_function_local_imports():
    graph = _imports()
    assert len(graph) > 40 and "attrdistill.pipeline.stages" in graph["attrdistill.pipeline.plan"], "the graph is read"
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_planning_imports_no_torch():
    code = ("import sys; from attrdistill.config import load_config; from attrdistill.pipeline.plan import plan; "
            "from attrdistill.pipeline.runner import describe; from pathlib import Path; "
            "print(describe(Path('/nonexistent'), plan(Path('/nonexistent'), load_config()))[:20]); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
