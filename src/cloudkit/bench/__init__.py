"""Benchmarks users run to compare providers and deployments (reports: CSV, Markdown, PNG).

Scripts that only print figures for the project's own regressions live in `benchmarks/`; what
is here is part of the installed `cloudkit` command. Like `scenarios`, it reaches clusters and
the local stack only over the network.
"""
