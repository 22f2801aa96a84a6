"""Imports every table module of `models/` so `SQLModel.metadata` is complete (for Alembic and tests)."""

import importlib
import pkgutil

import models

for _module in pkgutil.iter_modules(models.__path__):
    if _module.name != "all":
        importlib.import_module(f"models.{_module.name}")
