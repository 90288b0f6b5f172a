"""Tests use the same private-stack helpers as the benchmarks."""

from infra.private_stack import ROOT, cli, free_port, port_free, stack_env

__all__ = ["ROOT", "cli", "free_port", "port_free", "stack_env"]
