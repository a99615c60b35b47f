"""Fixtures of the secrets tests: a real PostgreSQL for database rotation."""
from tests.secrets.postgres import postgres  # noqa: F401 - the fixture, shared by this folder's tests
