"""The shipped code (the layers and the functions) never imports the dev tooling (``signoff_dev``).

The dev tooling lives in ``devtools/`` and is not in the Lambda layer: an import of it from the runtime
would work on a laptop and fail in AWS with ``ModuleNotFoundError``. Two proofs: no import statement
(or module name given to ``importlib``) names it, and every shipped module imports with ``signoff_dev``
made unimportable.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [ROOT / "layers" / "signoff" / "signoff", ROOT / "layers" / "agents", ROOT / "functions"]


def _shipped_files() -> list[Path]:
    return sorted(path for folder in SHIPPED for path in folder.rglob("*.py"))


def _names_dev_tooling(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return any(alias.name.split(".")[0] == "signoff_dev" for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] == "signoff_dev"
    # importlib.import_module("signoff_dev.x"), __import__("signoff_dev"), a module name in a setting
    return isinstance(node, ast.Constant) and str(node.value).split(".")[0] == "signoff_dev"


def test_no_shipped_module_names_the_dev_tooling():
    # Given every Python file of the layers and the functions
    files = _shipped_files()
    assert len(files) > 20

    # When their syntax trees are searched for imports of signoff_dev
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in files
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if _names_dev_tooling(node)
    ]

    # Then there are none
    assert offenders == []


_IMPORT_EVERYTHING = r"""
import importlib, importlib.util, json, pkgutil, sys
from pathlib import Path

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "signoff_dev":
            raise ImportError(f"the runtime imported {name}")
        return None

sys.meta_path.insert(0, Blocked())
import signoff
names = sorted(m.name for m in pkgutil.walk_packages(signoff.__path__, "signoff."))
for name in names:
    importlib.import_module(name)
import catalog
for app in sorted(Path(sys.argv[1]).glob("*/app.py")):
    sys.path.insert(0, str(app.parent))
    spec = importlib.util.spec_from_file_location(f"fn_{app.parent.name}", app)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.path.remove(str(app.parent))
    names.append(app.parent.name)
from signoff import runtime
runtime.build_dependencies(runtime.get_settings())
print(json.dumps({"imported": names, "dev": sorted(m for m in sys.modules if m.startswith("signoff_dev"))}))
"""


def test_every_shipped_module_imports_without_the_dev_tooling(tmp_path):
    # Given a Python whose path has the layers but where signoff_dev cannot be imported
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SIGNOFF_", "OPENAI_", "PYTHONPATH"))
    }
    env.update(
        PYTHONPATH=os.pathsep.join(str(ROOT / "layers" / name) for name in ("signoff", "agents")),
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_TRACE_DISABLED="true",
        SIGNOFF_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
    )

    # When every module of the library, the agents and every function's handler are imported, and the
    # runtime composes its dependencies
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_EVERYTHING, str(ROOT / "functions")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )

    # Then all of it loads, and nothing of signoff_dev was imported
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "signoff.runtime" in report["imported"]
    assert "start_run" in report["imported"]
    assert report["dev"] == []
