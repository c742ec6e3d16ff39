"""The errors a user can cause. Each prints as one clear message; the CLI exits non-zero without a traceback."""

from __future__ import annotations


class OdeError(Exception):
    """Base of every error the platform reports to its user (a bad contract, a cycle, a failed stack...)."""

    exit_code = 1


class UsageError(OdeError):
    """A command was given something it cannot work with (an unknown context, a bad option value)."""

    exit_code = 2


class NothingToDeployError(UsageError):
    """What was asked for deploys no stack of its own (every context asked for is reused from the base)."""


class ProtectedEnvironmentError(OdeError):
    """An operation that would destroy or replace a protected or long-lived environment: a usage mistake."""

    exit_code = 2
