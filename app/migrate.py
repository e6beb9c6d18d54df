"""Apply the Alembic migrations (`hadir migrate`; `hadir serve` does it too on start)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config


def migrations_dir() -> Path:
    """`migrations/` beside the `app` package (a source checkout), else under `HADIR_HOME`
    (an installed package, as in the container image)."""
    here = Path(__file__).resolve().parent.parent / "migrations"
    if here.is_dir():
        return here
    return Path(os.environ.get("HADIR_HOME", ".")).resolve() / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)
