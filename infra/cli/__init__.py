"""The CLI: one module per invoke namespace (each ends with its Collection), composed by tasks.py."""
