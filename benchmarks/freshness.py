"""Which results files are older than the code they measure.

A benchmark measures what its script imports from this repository, followed through every import
of every module it reaches (imports inside functions too, and each package's __init__.py). Two
imports by name are followed too: a lazy attribute table (`nas`'s `_LAZY = {"Search":
"nas.search.loop", ...}`: `from nas import Search` reaches nas/search/loop.py) and an f-string
`f"pkg.sub.{name}"` passed to `importlib.import_module` (all of pkg.sub). A `-m MODULE` in the
script's command lines counts as importing MODULE and MODULE.__main__. Beside the modules: the data
files of each package reached (everything but .py under it), each file of nas/experiments/ whose name
the script spells out, and whatever paths the script lists in a module-level `MEASURES`
(bench_test_suite: the tests). Not counted: benchmarks/common.py (it writes headers and tables, it
measures nothing), benchmarks/freshness.py (it decides what to measure again, not how) and the
installed dependencies (pyproject.toml pins none: their versions are not in the repository).

A results file is stale when one of those files changed in behaviour after a commit its figures
were measured at. A Python module changed when its syntax tree without docstrings (nor attribute
docstrings) differs (so comments, docstrings and formatting never make results stale); a YAML file
when its parsed data differs
(comments and layout do not count); any other file when its bytes differ; a file added or removed
always counts. The commit is the one in its header or, for a benchmark that keeps its measurements in a JSON store
(`results/bench_NAME.json`), each commit recorded there. A commit marked "-dirty" (measured on
uncommitted changes), "unknown" or missing from this clone's history counts as stale.

    benchmarks/run_all --stale --list    # what is stale and why
    benchmarks/run_all --stale           # re-run only those
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACKAGES = ("nas", "latency", "scaling", "search_space")
EXPERIMENTS = "nas/experiments"  # the shipped configs (the checkout's experiments/ links there)
MOVED_FROM = "experiments"  # where they were before they shipped in the package: the same file, not a new one
NOT_MEASURED = ("benchmarks/common.py", "benchmarks/freshness.py")
_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_HEADER_COMMIT = re.compile(r"^Date: \S+\. Commit: (?P<commit>\S+?)\. Machine:", re.MULTILINE)


def _is_project_module(name: str) -> bool:
    return bool(_MODULE_NAME.match(name)) and name.split(".")[0] in PACKAGES


def _module_file(name: str, root: Path) -> Path | None:
    """The file of a module of this repository (its packages, the benchmarks' helpers), or None."""
    parts = name.split(".")
    if parts[0] == "benchmarks" and len(parts) == 2:
        parts = parts[1:]
    if parts[0] not in PACKAGES:  # `from common import ...` beside the scripts
        candidate = root / "benchmarks" / f"{parts[0]}.py"
        return candidate if len(parts) == 1 and candidate.is_file() else None
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=None)
def _lazy_table(path: Path) -> dict[str, str]:
    """{attribute: module} from a module's dict literals of project module names (lazy imports)."""
    table = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if (isinstance(key, ast.Constant) and isinstance(key.value, str) and isinstance(value, ast.Constant)
                        and isinstance(value.value, str) and _is_project_module(value.value)):
                    table[key.value] = value.value
    return table


def _imported_names(path: Path, root: Path) -> set[str]:
    """The module names `path` imports (see the module's docstring for what counts)."""
    text = path.read_text()
    package = path.relative_to(root).parts[:-1]  # where its relative imports start
    names: set[str] = set()
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            anchor = list(package[: len(package) - node.level + 1]) if node.level else []
            base = ".".join([*anchor, *([node.module] if node.module else [])])
            names.add(base)
            found = _module_file(base, root)
            lazy = _lazy_table(found) if found is not None and found.name == "__init__.py" else {}
            for alias in node.names:
                names.add(f"{base}.{alias.name}")  # `from pkg import module`
                if alias.name in lazy:
                    names.add(lazy[alias.name])
        elif isinstance(node, ast.JoinedStr) and "import_module" in text and node.values:
            head = node.values[0]
            if isinstance(head, ast.Constant) and str(head.value).endswith("."):
                prefix = head.value[:-1]
                if _is_project_module(prefix):
                    names.update(f"{prefix}.{p.stem}" for p in root.joinpath(*prefix.split(".")).glob("*.py"))
        elif isinstance(node, (ast.List, ast.Tuple)):  # [sys.executable, "-m", "nas", ...]
            items = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            for flag, module in zip(items, items[1:]):
                if flag == "-m" and isinstance(module, str):
                    names.update({module, f"{module}.__main__"})
    return names


def _declared(path: Path) -> tuple[str, ...]:
    """The script's module-level MEASURES = (...) paths, if any."""
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "MEASURES" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    return ()


def _git(root: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=check)


def _tracked(root: Path, *paths: str) -> list[str]:
    """The files under `paths` that git tracks or would (new files not yet added, not ignored ones)."""
    return _git(root, "ls-files", "--cached", "--others", "--exclude-standard", "--", *paths, check=True).stdout.split()


def measured_files(script: Path, root: Path = ROOT) -> list[str]:
    """Repository-relative paths of everything `script` measures (see the module's docstring)."""
    seen: set[Path] = set()
    todo = [script.resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_names(path, root):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # a module runs its packages' __init__ first
                found = _module_file(".".join(parts[:i]), root)
                if found is not None and found not in seen:
                    todo.append(found)
    files = {p.relative_to(root).as_posix() for p in seen}
    packages = sorted({f.split("/")[0] for f in files if f.split("/")[0] in PACKAGES})
    if packages:  # their data (tables, constants)
        files.update(f for f in _tracked(root, *packages) if not f.endswith(".py") and not f.startswith(EXPERIMENTS))
    text = script.read_text()
    files.update(f for f in _tracked(root, EXPERIMENTS) if Path(f).name in text)
    if declared := _declared(script):
        files.update(_tracked(root, *declared))
    return sorted(f for f in files if f not in NOT_MEASURED)


def measured_at(name: str, results: Path) -> list[str]:
    """The commits a benchmark's figures were measured at: its JSON store's, else its header's."""
    store = results / f"bench_{name}.json"
    if store.exists():
        found: list[str] = []

        def walk(value) -> None:
            if isinstance(value, dict):
                if "accuracy" in value or "result" in value:  # one measurement
                    found.append(value.get("commit") or "unknown")
                    return
                for v in value.values():
                    walk(v)
            elif isinstance(value, list):
                for v in value:
                    walk(v)

        walk(json.loads(store.read_text()))
        return sorted(set(found))
    markdown = results / f"bench_{name}.md"
    if not markdown.exists():
        return ["never run"]
    match = _HEADER_COMMIT.search(markdown.read_text())
    return [match["commit"] if match else "unknown"]


@dataclass(frozen=True)
class Staleness:
    name: str
    commits: list[str]  # the commits its figures were measured at
    changed: list[str]  # measured files changed since any of them ([] and no reason: current)
    reason: str = ""  # why it is stale without a diff to show (a dirty or unknown commit)

    @property
    def stale(self) -> bool:
        return bool(self.changed or self.reason)

    def describe(self) -> str:
        at = ", ".join(self.commits)
        if not self.stale:
            return f"bench_{self.name}: current (measured at {at})"
        why = self.reason or (f"{len(self.changed)} measured file(s) changed since: "
                              + ", ".join(self.changed[:6]) + (", ..." if len(self.changed) > 6 else ""))
        return f"bench_{self.name}: STALE (measured at {at}): {why}"


def _not_a_commit(commit: str | None) -> bool:
    return not commit or commit in ("unknown", "never run") or commit.endswith("-dirty")


def changed_since(commit: str | None, files: list[str], root: Path = ROOT) -> list[str] | None:
    """Which of `files` differ between `commit` and the working tree (untracked ones included);
    None when `commit` is no commit of this clone ("-dirty", "unknown", missing: nothing to diff)."""
    if _not_a_commit(commit) or _git(root, "cat-file", "-e", f"{commit}^{{commit}}").returncode:
        return None
    changed = _git(root, "diff", "--name-only", commit, "--", *files).stdout.split()
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "--", *files).stdout.split()
    return sorted({f for f in changed if _behaves_differently(root, commit, f)} | set(untracked))


def _behaviour(path: str, data: bytes | None):
    """What of a file can change a measurement: a module's syntax tree without docstrings, a YAML
    file's data, any other file's bytes. None for a file that does not exist (or does not parse, which
    then compares unequal to anything that does)."""
    if data is None:
        return None
    if path.endswith(".py"):
        try:
            tree = ast.parse(data)
        except (SyntaxError, ValueError):
            return ("unparsable", data)
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
                # docstrings, and the attribute docstrings under constants: strings no code reads
                node.body = [n for n in body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
                                                     and isinstance(n.value.value, str))] or [ast.Pass()]
        return ast.dump(tree, annotate_fields=False, include_attributes=False)
    if path.endswith((".yaml", ".yml")):
        import yaml

        try:
            return ("yaml", repr(yaml.safe_load(data)))  # key order kept: it may matter
        except yaml.YAMLError:
            return ("unparsable", data)
    return data


def _behaves_differently(root: Path, commit: str, path: str) -> bool:
    """Whether `path` differs in behaviour between `commit` and the working tree."""
    shown = subprocess.run(["git", "-C", str(root), "show", f"{commit}:{path}"], capture_output=True)
    if shown.returncode and path.startswith(EXPERIMENTS + "/"):  # the shipped configs lived in experiments/
        shown = subprocess.run(["git", "-C", str(root), "show", f"{commit}:{MOVED_FROM}/{Path(path).name}"],
                               capture_output=True)
    before = shown.stdout if shown.returncode == 0 else None
    file = root / path
    after = file.read_bytes() if file.is_file() else None
    return before is None or after is None or _behaviour(path, before) != _behaviour(path, after)


def staleness(name: str, root: Path = ROOT) -> Staleness:
    script = root / "benchmarks" / f"bench_{name}.py"
    commits = measured_at(name, root / "benchmarks" / "results")
    files = measured_files(script, root)
    changed: set[str] = set()
    for c in commits:
        since = changed_since(c, files, root)
        if since is None:
            reason = (f"measured at '{c}', not at a commit of this repository" if _not_a_commit(c)
                      else f"commit {c} is not in this clone's history (a shallow clone?)")
            return Staleness(name, commits, [], reason)
        changed.update(since)
    return Staleness(name, commits, sorted(changed))
