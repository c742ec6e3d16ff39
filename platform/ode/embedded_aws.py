"""An embedded AWS for ``--target local``: moto's server on 127.0.0.1, so that a real ``pulumi up`` works on a
laptop with no AWS account. The AWS provider of every stack is pointed at it (``ode:awsEndpoint``)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from .errors import UsageError
from .program import CONFIG_TARGET, ENDPOINT_VARIABLE

#: moto's own switch: the IAM backends it makes while set know AWS's managed policies (and are slow to make).
_MANAGED_POLICIES = "MOTO_IAM_LOAD_MANAGED_POLICIES"


@dataclass
class LocalAws:
    """A running moto server; ``stop()`` it when done."""

    server: Any
    endpoint: str
    #: Whether :meth:`start` set :data:`_MANAGED_POLICIES` in this process, which :meth:`stop` then takes back.
    set_managed_policies: bool = False

    @classmethod
    def start(cls) -> LocalAws:
        """Start moto's server on 127.0.0.1, on a free port."""
        try:
            from moto.server import ThreadedMotoServer
        except ModuleNotFoundError:
            raise UsageError("--target local needs the embedded AWS (moto): pip install 'ondemandenv[local]'") from None

        # The ECS task execution role attaches an AWS-managed policy, which moto knows only when told to load them.
        # Only while this server runs: moto reads it in this process, which may go on to other work (ode called
        # in-process), where every IAM backend would load them all.
        added = _MANAGED_POLICIES not in os.environ
        if added:
            os.environ[_MANAGED_POLICIES] = "true"
        try:
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
        except BaseException:
            if added:
                os.environ.pop(_MANAGED_POLICIES, None)
            raise
        return cls(server, f"http://{host}:{port}", set_managed_policies=added)

    def environment(self) -> dict[str, str]:
        """Variables for the processes that talk to it: fake credentials and the endpoint."""
        return {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": self.endpoint, ENDPOINT_VARIABLE: self.endpoint,
                _MANAGED_POLICIES: "true"}

    def stack_config(self) -> dict[str, str]:
        """The stack config that points each stack's AWS provider here: only the target, not the address, which
        changes every run (it reaches the program through :meth:`environment`), so that a stack whose inputs did
        not change is not redeployed."""
        return {CONFIG_TARGET: "local"}

    def stop(self) -> None:
        """Stop the server, and give the process back the environment :meth:`start` found."""
        try:
            self.server.stop()
        finally:
            if self.set_managed_policies:
                os.environ.pop(_MANAGED_POLICIES, None)
                self.set_managed_policies = False
