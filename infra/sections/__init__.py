"""StackConfig sections, one module per concern; infra.config composes and re-exports them."""
