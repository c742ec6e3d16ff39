"""The core every operation runs on: plan and run an environment's stacks in dependency order, under its lock.

Rooms: :mod:`~ode.execution.orchestrator` (plan, up, destroy, status), :mod:`~ode.execution.planning` (what decides
that a stack deploys: fingerprint parts, why), :mod:`~ode.execution.scheduler` (the ready-set queue),
:mod:`~ode.execution.runs` (a run's lock and record), :mod:`~ode.execution.events` (typed progress events that
reporters render), :mod:`~ode.execution.results` (what a run returns); and over the orchestrator,
:mod:`~ode.execution.drift` (refresh, drift checks, heals) and :mod:`~ode.execution.ephemeral` (environments made
on demand).
"""
