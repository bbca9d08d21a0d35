"""The two rooms: everything outside ``personcut.train`` imports without torch and without
``personcut.train``, so the light install (ONNX Runtime) runs all of it."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import personcut

RUNTIME_MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(personcut.__path__, "personcut.")
    if not info.name.startswith("personcut.train") and info.name != "personcut.__main__"
)

BLOCKER = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "torchmetrics") or name.startswith(
            "personcut.train"
        ):
            raise ImportError(f"{name} imported at import time")
        return None

sys.meta_path.insert(0, Block())
"""


def test_runtime_room_lists_the_modules_users_run():
    for name in ("cli", "cutout", "segmenter", "images", "files", "video", "server", "weights"):
        assert f"personcut.{name}" in RUNTIME_MODULES


def test_runtime_modules_import_without_torch_or_train():
    code = BLOCKER + "".join(f"import {m}\n" for m in RUNTIME_MODULES) + "print('ok')"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def test_the_blocker_bites():
    """The check above would notice: importing the train room under the blocker fails."""
    code = BLOCKER + "import personcut.train.loop"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode != 0 and "imported at import time" in run.stderr


def test_no_runtime_module_imports_train_at_top_level():
    """Also by reading the files: a module-level ``import torch`` or ``personcut.train`` import
    outside train/ is refused even where the import would happen to be guarded."""
    import ast

    root = Path(personcut.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if "train" in path.relative_to(root).parts:
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:  # top level only: imports inside functions are lazy
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] == "torch" or name.startswith("personcut.train"):
                    offenders.append(f"{path.relative_to(root)}: {name}")
    assert not offenders
