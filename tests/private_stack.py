"""Tests use the same private-stack helpers as the benchmarks."""

import psutil

from infra.private_stack import ROOT, cli, free_port, port_free, stack_env

__all__ = ["ROOT", "cli", "free_port", "kill_9_tree", "port_free", "stack_env"]


def kill_9_tree(pid: int) -> None:
    """SIGKILL a server and every process it forked (PostgreSQL's workers), and wait."""
    server = psutil.Process(pid)
    family = [server, *server.children(recursive=True)]
    for process in family:
        process.kill()
    psutil.wait_procs(family, timeout=10)
