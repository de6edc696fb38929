"""Kept for imports written before update clients became adapters: see harness.clients."""

from harness.clients.shell_agent import ShellAgent

__all__ = ["ShellAgent"]
