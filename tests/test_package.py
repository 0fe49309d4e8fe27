"""The package as installed: assets ship inside it, exports are sorted."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import monitor

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_carries_templates_seeds_and_migrations(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, cwd=tmp_path)  # fmt: skip
    wheel = next(tmp_path.glob("news_monitor-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {p.name for p in (ROOT / "monitor" / "templates").iterdir()}
    assert {f"monitor/templates/{t}" for t in templates} <= names
    assert {f"storage/seeds/{p.name}" for p in (ROOT / "storage" / "seeds").glob("*.txt")} <= names
    assert "storage/migrations/env.py" in names and "storage/migrations/script.py.mako" in names
    versions = {f"storage/migrations/versions/{p.name}"
                for p in (ROOT / "storage" / "migrations" / "versions").glob("0*.py")}  # fmt: skip
    assert versions and versions <= names


def test_runs_from_any_directory(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("feeds: []\n")
    done = subprocess.run([sys.executable, "-m", "monitor", "config", "check", "--config",
                           str(config)], cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout


def _isort(name: str) -> tuple[int, str]:
    """Constants, then classes, then the rest, each alphabetical (ruff's RUF022 order)."""
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return kind, name


def _modules() -> list[str]:
    found = [m.name for m in pkgutil.walk_packages(monitor.__path__, "monitor.")]
    return [n for n in found if n != "monitor.__main__"] + ["storage", "storage.repository"]


@pytest.mark.parametrize("name", _modules())
def test_all_is_sorted_and_exported(name: str) -> None:
    module = importlib.import_module(name)
    names = getattr(module, "__all__", None)
    if names is None:
        assert name.rsplit(".", 1)[-1].startswith("_"), f"{name} has no __all__"
        return
    assert list(names) in (sorted(names), sorted(names, key=_isort)), f"{name}: unsorted"
    for n in names:
        assert hasattr(module, n), f"{name}.__all__ names missing {n}"
