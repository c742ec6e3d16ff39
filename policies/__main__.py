"""The OnDemandEnv policy pack (Pulumi CrossGuard): ``pulumi up --policy-pack policies``.

The rules are not written here: they live in ``ode.policy`` and run in-process in ``ode check`` and the deploy
gate too. This file only builds the ``PolicyPack``, which starts the analyzer server the Pulumi CLI talks to, so it
must never be imported by anything else.
"""

import sys
from pathlib import Path

# The pack runs from its own folder inside the project: make the project's sources importable.
ROOT = Path(__file__).resolve().parent.parent
for source in (ROOT / "platform", ROOT):
    if str(source) not in sys.path:
        sys.path.insert(0, str(source))

from pulumi_policy import PolicyPack  # noqa: E402

from ode.policy import crossguard_policies  # noqa: E402

PolicyPack(name="ondemandenv", policies=crossguard_policies(),
           description="Compliance, security and AWS-fidelity rules of OnDemandEnv contracts")
