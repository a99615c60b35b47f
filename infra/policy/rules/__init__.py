"""One module per concern; each exposes POLICIES."""
