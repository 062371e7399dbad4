"""Alembic migrations of the case database (run by ``fundtrail db upgrade``)."""
