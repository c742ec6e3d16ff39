"""The OnDemandEnv policy pack (Pulumi CrossGuard): ``pulumi up --policy-pack policies``.

The rules are not written here: they live in ``ode.policy`` and run in-process in ``ode check`` and the deploy
gate too. This file only builds the ``PolicyPack``, which starts the analyzer server the Pulumi CLI talks to, so it
must never be imported by anything else.
"""

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MethodType
from typing import Any

# The pack runs from its own folder inside the project: make the project's sources importable.
ROOT = Path(__file__).resolve().parent.parent
for source in (ROOT / "platform", ROOT):
    if str(source) not in sys.path:
        sys.path.insert(0, str(source))

from pulumi_policy import PolicyPack  # noqa: E402

from ode.policy import crossguard_policies  # noqa: E402


def _plain(value: Any) -> Any:
    """A property value as the rules get it in-process: plain dicts and lists.

    Under the CLI, pulumi-policy hands a policy its properties wrapped in read-only proxies (a ``Mapping`` and a
    ``Sequence`` that raise ``UnknownValueError`` on a value not known until the update); the rules test for
    ``dict`` and ``list``. Copying them out keeps the proxies' check: an unknown value still raises, inside the
    policy's ``validate``, where pulumi-policy reports it as a policy it cannot run during a preview.
    """
    if isinstance(value, Mapping):
        return {key: _plain(value[key]) for key in value}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(item) for item in value]
    return value


def _with_plain_properties(policy: Any) -> Any:
    validate = policy.validate

    def plain_validate(self: Any, args: Any, report: Any) -> Any:
        # a resource's arguments, or a stack's resources: each with its properties and its provider's
        for holder in [args, *getattr(args, "resources", [])]:
            for item in (holder, getattr(holder, "provider", None)):
                if item is not None and getattr(item, "props", None) is not None:
                    item.props = _plain(item.props)
        return validate(args, report)

    policy.validate = MethodType(plain_validate, policy)
    return policy


PolicyPack(name="ondemandenv", policies=[_with_plain_properties(p) for p in crossguard_policies()],
           description="Compliance, security and AWS-fidelity rules of OnDemandEnv contracts")
