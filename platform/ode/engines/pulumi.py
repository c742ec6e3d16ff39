"""The pulumi engine: each stack run through Pulumi's Automation API."""

from __future__ import annotations

import os
import shutil


class PulumiEngine:
    name = "pulumi"

    @staticmethod
    def available() -> bool:
        """Whether a ``pulumi`` CLI is on PATH (or named by ``PULUMI_HOME``'s bin)."""
        return shutil.which("pulumi", path=os.environ.get("PATH")) is not None
