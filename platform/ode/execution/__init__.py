"""The core every operation runs on: plan and run an environment's stacks in dependency order, under its lock.

Rooms: :mod:`~ode.execution.planning` (the pure planner: which stacks, their upstream values, spec, fingerprint and
why, as plain data), :mod:`~ode.execution.runners` (one runner per operation, owning its registry writes, retries
and publishing, and the drivers that schedule them), :mod:`~ode.execution.executor` (where a stack's engine
operation runs: a plain-data task in, a plain-data result out), :mod:`~ode.execution.scheduler` (the ready-set
queue), :mod:`~ode.execution.runs` (a run's lock, fencing and record), :mod:`~ode.execution.events` (typed progress
events that reporters render), :mod:`~ode.execution.results` (what a run returns); and the facades over them,
:mod:`~ode.execution.orchestrator` (plan, up, destroy, status), :mod:`~ode.execution.drift` (refresh, drift checks,
heals) and :mod:`~ode.execution.ephemeral` (environments made on demand).
"""
