"""An embedded AWS for ``--target local``: moto's server on 127.0.0.1, so that a real ``pulumi up`` works on a
laptop with no AWS account. The AWS provider of every stack is pointed at it (``ode:awsEndpoint``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any


@dataclass
class LocalAws:
    """A running moto server; ``stop()`` it when done."""

    server: Any
    endpoint: str

    @classmethod
    def start(cls) -> LocalAws:
        """Start moto's server on 127.0.0.1, on a free port."""
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        return cls(server, f"http://{host}:{port}")

    def environment(self) -> dict[str, str]:
        """Variables for the processes that talk to it: fake credentials and the endpoint."""
        return {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": self.endpoint}

    def stack_config(self) -> dict[str, str]:
        """The stack config that points each stack's AWS provider here."""
        return {"ode:awsEndpoint": self.endpoint}

    def stop(self) -> None:
        self.server.stop()
