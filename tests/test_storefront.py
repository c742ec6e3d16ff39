"""The sample storefront's own code (``contracts/services/storefront``): it signs every call to the APIs it consumes
with SigV4 the way API Gateway's ``AWS_IAM`` authorization checks it, and serves the shop's pages from what they
answer. Everything runs on 127.0.0.1: a stand-in API that verifies each signature with the secret it knows, and the
storefront's own server in front of it. No AWS."""

from __future__ import annotations

import hmac
import importlib.util
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

from .conftest import SAMPLE

APP_DIR = SAMPLE / "services" / "storefront"
ACCESS_KEY, SECRET_KEY, TOKEN = "AKIDSTOREFRONTTEST", "storefront-test-secret", "session-token-of-the-task"
_AUTH = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$")


def load_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("storefront_app", APP_DIR / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


app = load_app()


def verify(method: str, path: str, headers: dict[str, str], body: bytes, secret: str) -> str | None:
    """What is wrong with a request's SigV4 signature (None when it is right), recomputed as API Gateway does:
    from the signed headers, the body and the secret of the access key it names."""
    found = _AUTH.match(headers.get("Authorization", ""))
    if not found:
        return "no SigV4 Authorization header"
    access_key, _, region, service, signed, signature = found.groups()
    if service != "execute-api":
        return f"signed for {service}, not execute-api"
    names = signed.split(";")
    if "x-amz-security-token" not in names:
        return "the session token is not signed"
    lower = {k.lower(): v for k, v in headers.items()}
    request = AWSRequest(method=method, url=f"http://{lower['host']}{path}", data=body or None,
                         headers={n: lower[n] for n in names if n != "host"})
    request.context["timestamp"] = lower["x-amz-date"]
    signer = SigV4Auth(Credentials(access_key, secret, lower.get("x-amz-security-token")), service, region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return None if hmac.compare_digest(expected, signature) else "signature does not match"


class StandInApi:
    """An HTTP API on 127.0.0.1 that answers only requests signed with ``secret``: the catalog's products under
    ``/catalog``, orders under ``/orders-api``."""

    def __init__(self, secret: str = SECRET_KEY):
        self.secret = secret
        self.seen: list[dict[str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = dict(self.headers.items())
                problem = verify(self.command, self.path, headers, body, api.secret)
                api.seen.append({"method": self.command, "path": self.path, "problem": problem,
                                 "authorization": headers.get("Authorization", ""), "body": body})
                if problem:
                    status, reply = 403, {"message": problem}
                elif self.path == "/catalog/products":
                    status, reply = 200, [{"product_id": "p1", "name": "Tea", "price": 4.5}]
                elif self.path.startswith("/catalog/products/"):
                    status, reply = 200, {"product_id": self.path.rsplit("/", 1)[1], "name": "Tea"}
                elif self.path == "/orders-api/orders" and self.command == "POST":
                    status, reply = 201, {"order_id": "o1", **json.loads(body)}
                else:
                    status, reply = 404, {"message": "Not Found"}
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer  # noqa: N815 - the standard library's names

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def running(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def api() -> Iterator[StandInApi]:
    stand_in = StandInApi()
    running(stand_in.server)
    try:
        yield stand_in
    finally:
        stand_in.server.shutdown()
        stand_in.server.server_close()


def client(secret: str = SECRET_KEY) -> Any:
    return app.SignedClient(lambda: ReadOnlyCredentials(ACCESS_KEY, secret, TOKEN), region="eu-west-1", timeout=5)


def test_requests_are_signed_as_api_gateway_checks_them(api: StandInApi) -> None:
    status, body = client().call("GET", f"{api.url}/catalog/products/p%201")
    assert (status, body) == (200, {"product_id": "p%201", "name": "Tea"})
    status, body = client().call("POST", f"{api.url}/orders-api/orders", {"total": 12.5})
    assert (status, body) == (201, {"order_id": "o1", "total": 12.5})
    assert [s["problem"] for s in api.seen] == [None, None]
    assert all(f"Credential={ACCESS_KEY}/" in s["authorization"] and "/eu-west-1/execute-api/aws4_request" in
               s["authorization"] for s in api.seen)


def test_a_request_signed_with_another_secret_is_refused_and_the_refusal_reported(api: StandInApi) -> None:
    status, body = client(secret="not-the-secret").call("GET", f"{api.url}/catalog/products")
    assert status == 403 and body == {"message": "signature does not match"}


def test_an_unreachable_api_is_a_502_naming_the_host() -> None:
    status, body = client().call("GET", "http://127.0.0.1:9/catalog/products")
    assert status == 502 and "127.0.0.1" in body["error"]


def test_the_region_comes_from_the_execute_api_host() -> None:
    assert app.region_of("https://abc123.execute-api.eu-west-1.amazonaws.com/products", "us-east-1") == "eu-west-1"
    assert app.region_of("http://127.0.0.1:8080/x", "us-east-1") == "us-east-1"


def test_the_storefront_serves_the_shop_from_the_apis_it_consumes(api: StandInApi) -> None:
    shop = app.Storefront(f"{api.url}/catalog/", f"{api.url}/orders-api", client())
    server = app.serve(shop, 0, host="127.0.0.1")
    running(server)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as reply:
            assert reply.status == 200 and json.loads(reply.read()) == {"status": "ok"}
        assert api.seen == []  # the health check calls nothing
        with urllib.request.urlopen(f"{base}/", timeout=5) as reply:
            page = reply.read().decode()
        assert reply.headers["Content-Type"].startswith("text/html") and "<li>Tea 4.5</li>" in page
        order = urllib.request.Request(f"{base}/orders", data=json.dumps({"total": 3}).encode(), method="POST",
                                       headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(order, timeout=5) as reply:
            assert reply.status == 201 and json.loads(reply.read())["order_id"] == "o1"
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/nowhere", timeout=5)
        assert missing.value.code == 404
        assert [(s["method"], s["path"], s["problem"]) for s in api.seen] == [
            ("GET", "/catalog/products", None), ("POST", "/orders-api/orders", None)]
    finally:
        server.shutdown()
        server.server_close()


def test_the_image_runs_as_a_user_on_the_port_the_contract_names() -> None:
    contract = yaml.safe_load((SAMPLE / "storefront.yaml").read_text())
    dockerfile = (APP_DIR / "Dockerfile").read_text()
    assert (SAMPLE / contract["settings"]["build"]).resolve() == APP_DIR.resolve()
    exposed = re.findall(r"^EXPOSE\s+(\d+)", dockerfile, re.M)
    assert exposed == [str(contract["settings"]["container_port"])]
    user = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^FROM public\.ecr\.aws/", dockerfile, re.M)  # built by ode, pushed to the private ECR
    assert "botocore" in (APP_DIR / "requirements.txt").read_text()
    assert Path(APP_DIR / "app.py").is_file()
