"""Offline plan: the real Pulumi program under Pulumi's mocks, and how a plan reads."""
