"""Registers the built-in latency sources with `latency.base` (each module registers itself)."""
