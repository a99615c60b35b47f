"""Kubernetes API client from a kubeconfig (file path, or the default ~/.kube/config / KUBECONFIG).

One loader for every engine, so endpoints always come from the kubeconfig and never from code.
"""
from __future__ import annotations

from kubernetes import client, config


def load_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An ApiClient for the kubeconfig's (or given) context; urllib3 retries transient connection errors."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    configuration.retries = 3
    return client.ApiClient(configuration)
