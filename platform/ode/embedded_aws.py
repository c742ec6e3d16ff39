"""An embedded AWS for ``--target local``: moto's server on 127.0.0.1, so that a real ``pulumi up`` works on a
laptop with no AWS account. The AWS provider of every stack is pointed at it (``ode:awsEndpoint``)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from .errors import UsageError
from .program import CONFIG_TARGET, ENDPOINT_VARIABLE


@dataclass
class LocalAws:
    """A running moto server; ``stop()`` it when done."""

    server: Any
    endpoint: str

    @classmethod
    def start(cls) -> LocalAws:
        """Start moto's server on 127.0.0.1, on a free port."""
        try:
            from moto.server import ThreadedMotoServer
        except ModuleNotFoundError:
            raise UsageError("--target local needs the embedded AWS (moto): pip install 'ondemandenv[local]'") from None

        # The ECS task execution role attaches an AWS-managed policy, which moto knows only when told to load them.
        os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        return cls(server, f"http://{host}:{port}")

    def environment(self) -> dict[str, str]:
        """Variables for the processes that talk to it: fake credentials and the endpoint."""
        return {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": self.endpoint, ENDPOINT_VARIABLE: self.endpoint,
                "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}

    def stack_config(self) -> dict[str, str]:
        """The stack config that points each stack's AWS provider here: only the target, not the address, which
        changes every run (it reaches the program through :meth:`environment`), so that a stack whose inputs did
        not change is not redeployed."""
        return {CONFIG_TARGET: "local"}

    def stop(self) -> None:
        self.server.stop()
