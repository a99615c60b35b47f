"""Shared test support: the one invoke runner, worlds and fakes."""
