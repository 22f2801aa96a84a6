"""SQLModel tables (one PostgreSQL schema per bounded context) and the typed values passed between layers.

Importing `models.all` registers every table on `SQLModel.metadata` (Alembic needs that).
"""
