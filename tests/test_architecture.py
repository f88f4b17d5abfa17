"""The import contract in pyproject.toml (import-linter): layers, the worker boundary, pure policy."""
import subprocess
import sys
from pathlib import Path

from helpers import ROOT


def test_import_contract_is_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_package_inits_stay_light():
    """Importing a package never drags in its neighbours (gunicorn.conf.py imports settings before
    prometheus_client may be imported, and workers import only what they use)."""
    code = ("import sys, settings; heavy = {'flask', 'prometheus_client', 'wasmtime', 'requests', 'sqlite_utils'};"
            "print(sorted(heavy & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
