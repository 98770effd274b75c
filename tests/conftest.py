"""Plugins of every tier: the CPU each test costs (`--cpu-top N`, `--cpu-json PATH`)."""

pytest_plugins = ["tests.harness.cpu_report"]
