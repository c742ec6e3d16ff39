#!/usr/bin/env python3
"""Alias of ``ode ci`` (``python scripts/ephemeral_env.py up --pr 12`` is ``ode ci up --pr 12``); see its help."""
import sys

from ode.cli import main

main(["ci", *sys.argv[1:]], prog_name="ephemeral_env.py")
