"""``python -m ode.cli``: the ``ode`` command."""

from ode.cli.core import main

main()
