"""The deployment files agree with the code (no Docker engine here to run them)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from monitor.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_services_and_health() -> None:
    services = _compose()["services"]
    assert set(services) == {"db", "monitor", "mail"}
    db = services["db"]
    assert "healthcheck" in db and any("pgdata" in v for v in db["volumes"])
    assert services["monitor"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["monitor"]["build"] == "."
    assert "pgdata" in _compose()["volumes"]


def test_compose_config_exists_is_valid_and_gets_its_environment() -> None:
    monitor = _compose()["services"]["monitor"]
    mounts = [v.split(":") for v in monitor["volumes"]]
    config_mount = next(m for m in mounts if m[1] == monitor["environment"]["MONITOR_CONFIG"])
    path = ROOT / config_mount[0]
    needed = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", path.read_text()))
    assert needed <= set(monitor["environment"]), needed - set(monitor["environment"])
    config = load_config(path, env=dict.fromkeys(needed, "secret"))
    assert config.database.startswith("postgresql+psycopg://") and "@db:5432/" in config.database
    assert all(w.notify == ("desk-email",) for w in config.watchlists)
    shipped = load_config(ROOT / "config" / "monitor.yaml")
    assert config.feeds == shipped.feeds and config.aliases == shipped.aliases
    assert [w.query for w in config.watchlists] == [w.query for w in shipped.watchlists]


def test_dockerfile_runs_the_entry_point_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["monitor"] == "monitor.cli:main"
    assert 'ENTRYPOINT ["monitor"]' in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0")
    for folder in ("monitor", "storage"):
        assert f"COPY {folder} ./{folder}" in text


def test_systemd_unit_runs_the_daemon() -> None:
    text = (ROOT / "deploy" / "monitor.service").read_text()
    assert re.search(r"^ExecStart=\S*/monitor run --config \S+", text, re.M)
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text
    assert re.search(r"^User=monitor$", text, re.M)


def test_compose_monitor_can_be_scaled_out() -> None:
    """``docker compose up --scale monitor=2`` (README) needs a monitor service without a
    fixed container name or host port, on the shared PostgreSQL, not a SQLite file."""
    monitor = _compose()["services"]["monitor"]
    assert "container_name" not in monitor and "ports" not in monitor
    assert not any(v.split(":")[1].startswith("/var/lib/monitor") for v in monitor["volumes"])
    readme = (ROOT / "README.md").read_text()
    assert "docker compose up --scale monitor=2" in " ".join(readme.split())
