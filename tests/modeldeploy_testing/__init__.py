"""Shared test helpers: cluster discovery, kubectl, Prometheus, pytest fixtures."""
