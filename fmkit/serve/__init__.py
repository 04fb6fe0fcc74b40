"""Serving: an HTTP API over bundles with micro-batching, API keys, roles, limits and an audit log."""
