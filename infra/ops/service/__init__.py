"""The service contract as an executable check (`invoke service.check`), and the local dependencies it runs."""
