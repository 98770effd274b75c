"""Kubernetes-compatible API server for the local stack (aiohttp + SQLite in WAL mode).

Layers: store (SQLite, change log, watch fan-out) <- cluster (object semantics) <- app (HTTP).
"""
