"""The storefront: the shop's page, its product pages and its order form, served on the container port.

It calls the HTTP APIs its contract consumes (catalog's and orders'). Those are API Gateway routes with ``AWS_IAM``
authorization, so every request is signed with SigV4 (botocore's ``SigV4Auth``, service ``execute-api``) with the
task role's credentials; ode grants that role ``execute-api:Invoke`` on exactly the consumed routes.

What it reads from its environment (set by ode and ECS):

- ``CATALOG_CATALOG_API_URL``, ``ORDERS_ORDERS_API_URL``: where the consumed APIs are;
- ``PORT``: the port to listen on (8080, set by the Dockerfile beside ``EXPOSE 8080``: the contract's
  ``container_port``);
- ``AWS_REGION``: the region to sign for when an API's URL does not name one.

Credentials come from botocore's default chain: in ECS, the task role's, from the container credentials endpoint,
refreshed before they expire. ``GET /healthz`` answers without calling anything, so a slow API never fails the load
balancer's health check.
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from botocore.session import Session

#: The region an execute-api host names: ``abc123.execute-api.eu-west-1.amazonaws.com``.
_REGION_IN_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
#: The largest order body the storefront forwards.
MAX_BODY = 64 * 1024


def region_of(url: str, default: str | None = None) -> str:
    """The region to sign a request to ``url`` for: the one its execute-api host names, else ``default``, else
    ``AWS_REGION``/``AWS_DEFAULT_REGION``."""
    found = _REGION_IN_HOST.search(urlsplit(url).hostname or "")
    region = found.group(1) if found else default or os.environ.get("AWS_REGION") or os.environ.get(
        "AWS_DEFAULT_REGION")
    if not region:
        raise RuntimeError(f"no region to sign requests to {url} for: set AWS_REGION")
    return region


def _task_credentials() -> Callable[[], ReadOnlyCredentials]:
    """Frozen credentials of botocore's default chain, fetched when first needed and refreshed by botocore."""
    session = Session()
    cached: list[Any] = []

    def credentials() -> ReadOnlyCredentials:
        if not cached:
            found = session.get_credentials()
            if found is None:
                raise RuntimeError("no AWS credentials (the task role's come from the container credentials endpoint)")
            cached.append(found)
        return cached[0].get_frozen_credentials()  # type: ignore[no-any-return]

    return credentials


class SignedClient:
    """JSON requests to API Gateway routes with ``AWS_IAM`` authorization, signed with SigV4."""

    def __init__(self, credentials: Callable[[], ReadOnlyCredentials] | None = None, *, region: str | None = None,
                 timeout: float = 5.0):
        self.credentials = credentials or _task_credentials()
        self.region = region
        self.timeout = timeout

    def signed(self, method: str, url: str, body: bytes | None = None) -> urllib.request.Request:
        """The request, with SigV4 headers (``Authorization``, ``X-Amz-Date``, ``X-Amz-Security-Token``)."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        SigV4Auth(self.credentials(), "execute-api", region_of(url, self.region)).add_auth(request)
        prepared = request.prepare()
        return urllib.request.Request(prepared.url, data=body, headers=dict(prepared.headers), method=method)

    def call(self, method: str, url: str, payload: Any = None) -> tuple[int, Any]:
        """(HTTP status, decoded JSON body or text); a network failure is a 502 with the reason."""
        body = None if payload is None else json.dumps(payload).encode()
        try:
            with urllib.request.urlopen(self.signed(method, url, body), timeout=self.timeout) as reply:
                return reply.status, _decode(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _decode(exc.read())
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            return 502, {"error": f"{urlsplit(url).hostname}: {getattr(exc, 'reason', exc)}"}


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode("utf-8", "replace")


def _join(base: str, *segments: str) -> str:
    return base.rstrip("/") + "".join("/" + quote(s, safe="") for s in segments)


class Storefront:
    """What the shop does: each page or answer from the consumed APIs."""

    def __init__(self, catalog_url: str, orders_url: str, client: SignedClient):
        self.catalog_url, self.orders_url, self.client = catalog_url, orders_url, client

    def products(self) -> tuple[int, Any]:
        return self.client.call("GET", _join(self.catalog_url, "products"))

    def product(self, product_id: str) -> tuple[int, Any]:
        return self.client.call("GET", _join(self.catalog_url, "products", product_id))

    def place_order(self, order: Any) -> tuple[int, Any]:
        return self.client.call("POST", _join(self.orders_url, "orders"), order)

    def order(self, order_id: str) -> tuple[int, Any]:
        return self.client.call("GET", _join(self.orders_url, "orders", order_id))

    def page(self) -> str:
        """The shop's page: the catalog's products (or why there are none to show) and the order form."""
        status, found = self.products()
        items = found if isinstance(found, list) else found.get("items") if isinstance(found, dict) else None
        if status == 200 and isinstance(items, list):
            rows = "".join(f"<li>{html.escape(str(p.get('name', p.get('product_id', p))))}"
                           f" {html.escape(str(p.get('price', '')))}</li>" if isinstance(p, dict) else
                           f"<li>{html.escape(str(p))}</li>" for p in items)
            catalog = f"<ul>{rows}</ul>" if rows else "<p>No products yet.</p>"
        else:
            catalog = f"<p>The catalog answered {status}.</p>"
        return ("<!doctype html><html><head><meta charset='utf-8'><title>Shop</title></head><body>"
                f"<h1>Shop</h1><h2>Products</h2>{catalog}<h2>Order</h2>"
                "<p>POST /orders with a JSON body such as {\"total\": 12.5}; GET /orders/{id} to follow it.</p>"
                "</body></html>")


def handler_for(shop: Storefront) -> type[BaseHTTPRequestHandler]:
    """The HTTP handler of ``shop``'s routes."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "storefront"

        def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
            data = body.encode() if isinstance(body, str) and content_type != "application/json" else \
                json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            parts = [p for p in urlsplit(self.path).path.split("/") if p]
            if parts == ["healthz"]:
                self._send(200, {"status": "ok"})
            elif not parts:
                self._send(200, shop.page(), "text/html")
            elif len(parts) == 2 and parts[0] == "products":
                self._send(*shop.product(parts[1]))
            elif len(parts) == 2 and parts[0] == "orders":
                self._send(*shop.order(parts[1]))
            else:
                self._send(404, {"error": f"no page {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            if urlsplit(self.path).path.rstrip("/") != "/orders":
                self._send(404, {"error": f"no page {self.path}"})
                return
            size = int(self.headers.get("Content-Length") or 0)
            if size > MAX_BODY:
                self._send(413, {"error": f"an order is at most {MAX_BODY} bytes"})
                return
            try:
                order = json.loads(self.rfile.read(size) or b"{}")
            except ValueError:
                self._send(400, {"error": "the body is not JSON"})
                return
            self._send(*shop.place_order(order))

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the standard library's name
            print(json.dumps({"client": self.client_address[0], "request": format % args}), file=sys.stdout)

    return Handler


def serve(shop: Storefront, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:  # noqa: S104 - in a task
    """A server of ``shop`` on ``host:port`` (not started: call ``serve_forever``)."""
    return ThreadingHTTPServer((host, port), handler_for(shop))


def main() -> None:
    shop = Storefront(os.environ["CATALOG_CATALOG_API_URL"], os.environ["ORDERS_ORDERS_API_URL"], SignedClient())
    server = serve(shop, int(os.environ.get("PORT", "8080")))
    print(json.dumps({"listening": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
