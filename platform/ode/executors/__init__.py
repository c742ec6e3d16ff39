"""Where stacks run: on this machine's threads (``local``, the default), on the workers of an existing Dask
cluster (``dask://HOST:PORT``, ``dask+local://N``) or as AWS CodeBuild builds (``codebuild://PROJECT?region=R``).

    from ode.executors import ExecutorSetup, open_executor

    executor = open_executor("dask://scheduler:8786", setup)     # found by the URL's scheme (ode.executors)
    orchestrator = Orchestrator(library, registry, engine, executor=executor)

ode never keeps a worker pool of its own: the ready-set scheduler (:mod:`ode.execution.scheduler`) decides what
runs when, on the coordinator, which stays the one writer of the registry; an executor hands each ready stack's
operation to the distributed engine as a plain-data task document (:mod:`ode.executors.tasks`, no secret in it),
and a worker runs it with ``ode stack run --task FILE|-`` (:mod:`ode.executors.worker`), holding a per-stack lease
(:mod:`ode.executors.leases`) so that a second delivery of a task is refused, never run at once.

Every module that imports Dask or boto3 does so inside its functions: ``import ode`` loads neither.
"""

from __future__ import annotations

from .opening import ENTRY_POINT_GROUP, ExecutorSetup, executor_names, open_executor

__all__ = ["ENTRY_POINT_GROUP", "ExecutorSetup", "executor_names", "open_executor"]
