"""Alembic migrations of the study server's database (run them with ``emostudy db upgrade``)."""
