"""Tools for the authors of contracts: a new contract (:mod:`~ode.authoring.scaffold`), first drafts from OpenAPI and
AsyncAPI documents (:mod:`~ode.authoring.openapi`, :mod:`~ode.authoring.asyncapi`), the catalogue of component kinds
and the Backstage export (:mod:`~ode.authoring.catalog`), and what changed since a git ref: interface by interface
with breaking changes named (:mod:`~ode.authoring.evolution`, ``ode diff``), and context by context with their
consumers (:mod:`~ode.authoring.affected`)."""
