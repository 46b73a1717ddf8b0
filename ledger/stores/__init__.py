"""Adapters from settings to an eventsourcing environment, for SQLite and PostgreSQL."""
