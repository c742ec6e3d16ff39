"""Stack outputs in SSM Parameter Store, for tooling and for consumers in other repositories.

    from ode.publishing.ssm_outputs import SsmOutputs

    ssm = SsmOutputs("shop", region="eu-west-1")
    ssm.publish("dev", "orders", outputs, secret_outputs={"db-credentials"})
    ssm.read("dev", "orders")          # ({"orders-api": {...}, "db-credentials": {...}}, {"db-credentials"})

Each interface a stack provides becomes one parameter, ``/ode/<project>/<env>/<context>/<interface>``, whose value
is the interface's outputs as JSON. A secret output is a ``SecureString`` (encrypted with the account's
``aws/ssm`` key, or ``kms_key_id``); the others are plain ``String``. Done when the environment says
``publish: ssm`` in environments.yaml (:func:`wants_ssm`).

A consumer deployed from another repository, whose registry never saw its producers, reads them here
(:class:`ProducerOutputs`). Secret values read back stay in memory: they are handed to the engine as secret config,
never written to the registry or printed.

**Rehearsals are marked, and never replace reality.** Every parameter carries the tags ``ode:engine`` (the engine
that deployed the stack) and ``ode:simulated`` (``true`` when a simulated run published it: its values are made up).
A simulated run never overwrites or removes a parameter that a real engine wrote (one without
``ode:simulated=true``): :meth:`SsmOutputs.publish` refuses, and ``ode`` refuses the whole run before it starts.

The client comes from :mod:`ode.aws_clients`: calls have timeouts and a few attempts (an SSM endpoint that never
answers costs a run one wait, then one warning per stack), and ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_SSM``
point it at moto or LocalStack.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from .. import aws_clients
from ..errors import OdeError
from ..registry.protocol import RegistryBackend
from ..status import StackStatus

#: What SSM accepts in one path segment (and what ode's names use).
_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]+$")
ROOT = "/ode"
#: The tags every parameter carries: which engine published it, and whether that was a rehearsal.
ENGINE_TAG, SIMULATED_TAG = "ode:engine", "ode:simulated"

log = logging.getLogger(__name__)


class PublishError(OdeError):
    """Outputs could not be written to or read from SSM Parameter Store."""


def wants_ssm(environment: Any) -> bool:
    """True when an environment's settings (environments.yaml) say ``publish: ssm``."""
    return getattr(environment, "publish", None) == "ssm"


def parameter_name(project: str, env: str, context: str, interface: str) -> str:
    """``/ode/<project>/<env>/<context>/<interface>``; a name SSM cannot hold is a PublishError naming it."""
    for label, value in (("project", project), ("environment", env), ("context", context),
                         ("interface", interface)):
        if not _SEGMENT.match(value):
            raise PublishError(f"cannot publish to SSM: {label} {value!r} has characters a parameter name cannot "
                               "hold (letters, digits, '.', '-', '_')")
    return f"{ROOT}/{project}/{env}/{context}/{interface}"


class SsmOutputs:
    """Publishes and reads one project's stack outputs in SSM Parameter Store."""

    def __init__(self, project: str, *, region: str | None = None, kms_key_id: str | None = None,
                 client: Any = None):
        self.project = project
        self.kms_key_id = kms_key_id
        # Bounded calls (timeouts, few attempts, a silent endpoint not asked twice); boto3 imported there.
        self.client = client if client is not None else aws_clients.client("ssm", region)

    def _path(self, env: str, context: str) -> str:
        return parameter_name(self.project, env, context, "x").rsplit("/", 1)[0] + "/"

    def publish(self, env: str, context: str, outputs: dict[str, Any], secret_outputs: Iterable[str] = (), *,
                engine: str = "", simulated: bool = False) -> list[str]:
        """Write each interface of ``outputs`` (secret ones as SecureString), tagged with ``engine`` and whether
        the run was ``simulated``; remove parameters of interfaces the stack no longer has. Returns the names
        written. A simulated run that would replace a real engine's parameter is refused (:class:`PublishError`,
        nothing written)."""
        secret = set(secret_outputs)
        written: list[str] = []
        try:
            if simulated:
                real = [name for name, rehearsal in self.marks(env, context).items() if not rehearsal]
                if real:
                    raise PublishError(f"refusing to publish the outputs of {env}.{context} from a simulated run: "
                                       f"{real[0]} was published by a real engine, and a rehearsal never replaces it")
            for interface, value in sorted(outputs.items()):
                name = parameter_name(self.project, env, context, interface)
                args: dict[str, Any] = {"Name": name, "Value": json.dumps(value, sort_keys=True), "Overwrite": True,
                                        "Type": "SecureString" if interface in secret else "String",
                                        # a value over 4 KB moves to the advanced tier instead of failing
                                        "Tier": "Intelligent-Tiering",
                                        "Description": f"ode: outputs of {env}.{context} ({interface})"}
                if interface in secret and self.kms_key_id:
                    args["KeyId"] = self.kms_key_id
                self.client.put_parameter(**args)
                # Tags cannot go with Overwrite in one call: set after, on a new parameter and an old one alike.
                self.client.add_tags_to_resource(ResourceType="Parameter", ResourceId=name, Tags=[
                    {"Key": ENGINE_TAG, "Value": engine or "unknown"},
                    {"Key": SIMULATED_TAG, "Value": "true" if simulated else "false"}])
                written.append(name)
            stale = [n for n in self._names(env, context) if n not in written]
            if stale:
                self._delete(stale)
        except _aws_errors() as exc:
            # the message never carries a value: botocore errors name the parameter, not its content
            raise PublishError(f"cannot publish the outputs of {env}.{context} to SSM: {_reason(exc)}") from None
        return written

    def unpublish(self, env: str, context: str, *, simulated: bool = False) -> list[str]:
        """Remove a destroyed stack's parameters; returns their names. A simulated run removes only what
        rehearsals published (a real engine's parameters are refused: :class:`PublishError`, nothing removed)."""
        try:
            if simulated:
                marks = self.marks(env, context)
                real = [name for name, rehearsal in marks.items() if not rehearsal]
                if real:
                    raise PublishError(f"refusing to remove the outputs of {env}.{context} from a simulated run: "
                                       f"{real[0]} was published by a real engine")
                names = sorted(marks)
            else:
                names = self._names(env, context)
            if names:
                self._delete(names)
        except _aws_errors() as exc:
            raise PublishError(f"cannot remove the outputs of {env}.{context} from SSM: {_reason(exc)}") from None
        return names

    def read(self, env: str, context: str) -> tuple[dict[str, Any], frozenset[str]] | None:
        """The published outputs of ``env.context`` and the names of the secret ones (decrypted, in memory only);
        None when nothing is published for it."""
        outputs: dict[str, Any] = {}
        secret: set[str] = set()
        try:
            for param in self._parameters(env, context, decrypt=True):
                interface = param["Name"].rsplit("/", 1)[1]
                outputs[interface] = json.loads(param["Value"])
                if param["Type"] == "SecureString":
                    secret.add(interface)
        except _aws_errors() as exc:
            raise PublishError(f"cannot read the outputs of {env}.{context} from SSM: {_reason(exc)}") from None
        return (outputs, frozenset(secret)) if outputs else None

    def marks(self, env: str, context: str) -> dict[str, bool]:
        """Each published parameter of ``env.context`` -> whether a simulated run published it (tag
        ``ode:simulated=true``); a parameter without the tag was written by a real engine (or before the tags)."""
        found = {}
        for name in self._names(env, context):
            tags = self.client.list_tags_for_resource(ResourceType="Parameter", ResourceId=name).get("TagList", [])
            found[name] = any(t.get("Key") == SIMULATED_TAG and t.get("Value") == "true" for t in tags)
        return found

    def simulated(self, env: str, context: str) -> bool:
        """Whether any published output of ``env.context`` comes from a simulated run (made-up values)."""
        try:
            return any(self.marks(env, context).values())
        except _aws_errors() as exc:
            raise PublishError(f"cannot read the tags of {env}.{context}'s outputs in SSM: {_reason(exc)}") from None

    def _parameters(self, env: str, context: str, *, decrypt: bool) -> list[dict[str, Any]]:
        paginator = self.client.get_paginator("get_parameters_by_path")
        found: list[dict[str, Any]] = []
        for page in paginator.paginate(Path=self._path(env, context), Recursive=False, WithDecryption=decrypt):
            found.extend(page.get("Parameters", []))
        return found

    def _names(self, env: str, context: str) -> list[str]:
        return [p["Name"] for p in self._parameters(env, context, decrypt=False)]

    def _delete(self, names: list[str]) -> None:
        for i in range(0, len(names), 10):  # DeleteParameters takes at most 10 names
            self.client.delete_parameters(Names=names[i:i + 10])


def _aws_errors() -> tuple[type[Exception], ...]:
    """botocore's error classes (evaluated by an ``except`` clause only when something was raised)."""
    from botocore.exceptions import BotoCoreError, ClientError

    return ClientError, BotoCoreError


def _reason(exc: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc)


class ProducerOutputs:
    """A consumer's view of its producers' outputs: the registry first, then SSM for producers this registry
    does not know (deployed from another repository or runner).

    Outputs from the registry carry no secret values (the orchestrator reads those from the engine); outputs from
    SSM carry them, decrypted, with their names in the returned set so the caller keeps them secret.
    """

    def __init__(self, registry: RegistryBackend, ssm: SsmOutputs | None):
        self.registry = registry
        self.ssm = ssm

    def outputs(self, env: str, producer: str) -> tuple[dict[str, Any], frozenset[str], str] | None:
        """``(outputs, secret names, where)`` of ``env.producer``, ``where`` being ``registry`` or ``ssm``; None
        when neither knows it."""
        rec = self.registry.stack(env, producer)
        if rec is not None and rec.status == StackStatus.SUCCEEDED:
            return rec.outputs, frozenset(rec.secret_outputs), "registry"
        if self.ssm is None:
            return None
        found = self.ssm.read(env, producer)
        if found is None:
            return None
        outputs, secret = found
        return outputs, secret, "ssm"


class OutputsPublisher:
    """Stack outputs to SSM for the environments whose settings say ``publish: ssm`` (an environment made on
    demand follows its base), each in its environment's region; and read back from there.

    ``place(env)`` gives the region of an environment that publishes, or None for one that does not. Publishing
    never fails a deploy: an error is one warning line (logger ``ode.publishing.ssm_outputs``) and the deploy goes
    on."""

    def __init__(self, project: str, place: Callable[[str], tuple[bool, str | None]], *,
                 client_for: Callable[[str | None], Any] | None = None):
        self.project = project
        self.place = place
        self._client_for = client_for
        self._stores: dict[str | None, SsmOutputs] = {}
        self._lock = threading.Lock()
        #: Environments whose SSM outputs this process leaves alone (a rehearsal that could not check them).
        self._suspended: set[str] = set()

    def suspend(self, env: str) -> None:
        """Publish nothing more for ``env`` in this process, and read nothing from it: a simulated run that could
        not check what a real engine published there must not write over it."""
        with self._lock:
            self._suspended.add(env)

    def _store(self, env: str) -> SsmOutputs | None:
        wanted, region = self.place(env)
        if not wanted or env in self._suspended:
            return None
        with self._lock:
            if region not in self._stores:
                client = self._client_for(region) if self._client_for else None
                self._stores[region] = SsmOutputs(self.project, region=region, client=client)
            return self._stores[region]

    def publish(self, env: str, context: str, outputs: dict[str, Any], secret_outputs: Iterable[str] = (), *,
                engine: str = "", simulated: bool = False) -> None:
        """Publish a deployed stack's outputs (secret ones as SecureString, every one tagged with ``engine`` and
        ``simulated``); a failure, or a rehearsal that would replace a real engine's outputs, is a warning."""
        try:
            store = self._store(env)
            if store is not None:
                store.publish(env, context, outputs, secret_outputs, engine=engine, simulated=simulated)
        except Exception as exc:  # noqa: BLE001 - publishing must never fail the deploy
            log.warning("%s", _one_line(exc, f"could not publish the outputs of {env}.{context} to SSM"))

    def unpublish(self, env: str, context: str, *, simulated: bool = False) -> None:
        """Remove a destroyed stack's parameters (a simulated run: only a rehearsal's); a failure is a warning."""
        try:
            store = self._store(env)
            if store is not None:
                store.unpublish(env, context, simulated=simulated)
        except Exception as exc:  # noqa: BLE001 - a destroy that worked is not undone by this
            log.warning("%s", _one_line(exc, f"could not remove the outputs of {env}.{context} from SSM"))

    def read(self, env: str, context: str) -> tuple[dict[str, Any], frozenset[str]] | None:
        """The published outputs of ``env.context`` and the names of the secret ones; None when the environment
        does not publish, nothing is published, or SSM cannot be read (a warning says so)."""
        try:
            store = self._store(env)
            return store.read(env, context) if store is not None else None
        except Exception as exc:  # noqa: BLE001 - the caller reports the producer as not deployed
            log.warning("%s", _one_line(exc, f"could not read the outputs of {env}.{context} from SSM"))
            return None


    def simulated(self, env: str, context: str) -> bool:
        """Whether the published outputs of ``env.context`` come from a simulated run (False when none are, the
        environment does not publish, or SSM cannot be read: a warning says so)."""
        try:
            store = self._store(env)
            return store.simulated(env, context) if store is not None else False
        except Exception as exc:  # noqa: BLE001 - the caller goes on with what it read
            log.warning("%s", _one_line(exc, f"could not read the tags of {env}.{context}'s outputs in SSM"))
            return False

    def real(self, env: str, contexts: Iterable[str]) -> list[str]:
        """The contexts of ``contexts`` whose outputs a real engine published in ``env`` (what a simulated run must
        not replace); empty when the environment does not publish. SSM that cannot be read is a
        :class:`PublishError`: a rehearsal is not let loose on outputs nobody could check."""
        store = self._store(env)
        if store is None:
            return []
        found = []
        for context in contexts:
            try:
                marks = store.marks(env, context)
            except _aws_errors() as exc:
                raise PublishError(f"cannot check the outputs of {env}.{context} in SSM before a simulated run: "
                                   f"{_reason(exc)}") from None
            if any(not rehearsal for rehearsal in marks.values()):
                found.append(context)
        return found


def _one_line(exc: Exception, fallback: str) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if isinstance(exc, PublishError) else f"{fallback}: {text}"
