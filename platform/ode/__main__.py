"""``python -m ode``: the ``ode`` command."""

from ode.cli import main

main()
