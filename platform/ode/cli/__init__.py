"""The ``ode`` command: a thin shell over :mod:`ode.workspace`; each command parses, calls the library, renders.

:mod:`~ode.cli.core` holds the root group (commands registered lazily, by name) and what every command shares; one
module per family of commands: :mod:`~ode.cli.library` (validate, graph, schema), :mod:`~ode.cli.run` (plan, up,
destroy, status, outputs), :mod:`~ode.cli.drift` (refresh, drift), :mod:`~ode.cli.environments` (env, gc, affected),
:mod:`~ode.cli.ci`, :mod:`~ode.cli.registry`, :mod:`~ode.cli.check`, :mod:`~ode.cli.authoring` (components, init,
diff, import, catalog).
"""

from .core import main

__all__ = ["main"]
