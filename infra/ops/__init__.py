"""Run-time engines behind tasks.py. Nothing here imports pulumi."""
