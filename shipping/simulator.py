"""Local stand-in for the shipping partner's HTTP API (development and tests only).

Standalone: pure standard library, never imports Django or project code.

Run it::

    python -m shipping.simulator --host 127.0.0.1 --port 8430 --api-key dev-partner-key

or from Python (pytest fixtures)::

    sim = start_simulator(port=0, api_key="test-key", transit_seconds=0.2)
    sim.url  # "http://127.0.0.1:54321"
    sim.configure(fail_next=1)
    sim.stop()

Partner API (every ``/v1`` request needs ``Authorization: Bearer <api-key>``):

- ``POST /v1/shipments`` with header ``Idempotency-Key`` and body
  ``{"reference", "recipient": {"name", "line1", "line2", "city", "postal_code", "country"},
  "parcel": {...}}`` -> 201 with the shipment; the same key and body again -> 200 with the same
  shipment and header ``Idempotent-Replayed: true``; the same key with another body -> 409.
  Postal code ``00000`` -> 422 ``undeliverable``.
- ``GET /v1/shipments/{id}`` -> the shipment; its status moves from ``created`` to ``in_transit``
  after ``transit_seconds`` and to ``delivered`` after ``delivery_seconds`` (since creation).

Faults: ``latency_ms`` (every /v1 request), ``failure_rate`` (every /v1 request answers 503 with
that probability, doing nothing), ``lost_response_rate`` (a successful shipment POST does its work,
then the connection is closed without any response), and the deterministic ``fail_next`` /
``lose_next`` counters (next N shipment POSTs).

Simulator controls (no auth): ``GET|POST /_sim/config``, ``POST /_sim/reset`` (wipe shipments and
counters, restore the start-up configuration), ``GET /_sim/shipments``, ``GET /_sim/health``.
"""

from __future__ import annotations

import argparse
import copy
import hmac
import json
import random
import re
import secrets
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CARRIER = "SimPost"
UNDELIVERABLE_POSTAL_CODE = "00000"
MAX_BODY_BYTES = 1024 * 1024

DEFAULT_CONFIG: dict[str, Any] = {
    "latency_ms": 0,
    "failure_rate": 0.0,
    "lost_response_rate": 0.0,
    "fail_next": 0,
    "lose_next": 0,
    "transit_seconds": 5.0,
    "delivery_seconds": 15.0,
}

_SHIPMENT_PATH = re.compile(r"^/v1/shipments/(?P<id>[A-Za-z0-9_]+)$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _isoformat(timestamp: float) -> str:
    dt = datetime.fromtimestamp(timestamp, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _validate_config_update(update: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Return (clean values, field errors) for a partial configuration update."""
    if not isinstance(update, dict):
        return {}, {"__all__": "Expected a JSON object."}
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, value in update.items():
        if key not in DEFAULT_CONFIG:
            errors[key] = "Unknown setting."
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors[key] = "Expected a number."
            continue
        if key in ("failure_rate", "lost_response_rate"):
            if not 0.0 <= value <= 1.0:
                errors[key] = "Expected a probability between 0 and 1."
                continue
            clean[key] = float(value)
        elif key in ("fail_next", "lose_next", "latency_ms"):
            if value < 0 or int(value) != value:
                errors[key] = "Expected a non-negative integer."
                continue
            clean[key] = int(value)
        else:  # transit_seconds, delivery_seconds
            if value < 0:
                errors[key] = "Expected a non-negative number."
                continue
            clean[key] = float(value)
    return clean, errors


def _validate_shipment_request(body: Any) -> dict[str, str]:
    """Return field errors (empty when the request body is acceptable)."""
    if not isinstance(body, dict):
        return {"__all__": "Expected a JSON object."}
    errors: dict[str, str] = {}
    reference = body.get("reference")
    if not isinstance(reference, str) or not reference.strip():
        errors["reference"] = "This field is required (a non-empty string)."
    elif len(reference) > 100:
        errors["reference"] = "At most 100 characters."
    recipient = body.get("recipient")
    if not isinstance(recipient, dict):
        errors["recipient"] = "This field is required (an object)."
    else:
        for name in ("name", "line1", "city", "postal_code", "country"):
            value = recipient.get(name)
            if not isinstance(value, str) or not value.strip():
                errors[f"recipient.{name}"] = "This field is required (a non-empty string)."
            elif len(value) > 200:
                errors[f"recipient.{name}"] = "At most 200 characters."
        line2 = recipient.get("line2")
        if line2 is not None and not isinstance(line2, str):
            errors["recipient.line2"] = "Expected a string."
        country = recipient.get("country")
        if isinstance(country, str) and country.strip() and not _COUNTRY.match(country):
            errors["recipient.country"] = "Expected an ISO 3166-1 alpha-2 code such as 'DE'."
    parcel = body.get("parcel")
    if parcel is not None and not isinstance(parcel, dict):
        errors["parcel"] = "Expected an object."
    return errors


class SimulatorState:
    """All mutable simulator state, guarded by one lock (handlers run in threads)."""

    def __init__(self, api_key: str, config: dict[str, Any], seed: int | None = None) -> None:
        self.api_key = api_key
        self.lock = threading.Lock()
        self.initial_config = dict(config)
        self.config = dict(config)
        self.random = random.Random(seed)
        self.shipments: dict[str, dict[str, Any]] = {}
        self.by_idempotency_key: dict[str, str] = {}
        self.tracking_numbers: set[str] = set()
        self.counters = self._zero_counters()

    @staticmethod
    def _zero_counters() -> dict[str, int]:
        return {"create_requests": 0, "injected_failures": 0, "lost_responses": 0}

    # -- configuration -------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        with self.lock:
            return dict(self.config)

    def update_config(self, clean: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.config.update(clean)
            return dict(self.config)

    def reset(self) -> None:
        with self.lock:
            self.config = dict(self.initial_config)
            self.shipments.clear()
            self.by_idempotency_key.clear()
            self.tracking_numbers.clear()
            self.counters = self._zero_counters()

    # -- faults --------------------------------------------------------------------------------

    def latency_seconds(self) -> float:
        with self.lock:
            return self.config["latency_ms"] / 1000.0

    def should_fail(self, *, is_create: bool) -> bool:
        """Decide (and consume) an injected 503 for this request."""
        with self.lock:
            if is_create and self.config["fail_next"] > 0:
                self.config["fail_next"] -= 1
                self.counters["injected_failures"] += 1
                return True
            rate = self.config["failure_rate"]
            if rate > 0 and self.random.random() < rate:
                self.counters["injected_failures"] += 1
                return True
            return False

    def should_lose_response(self) -> bool:
        """Decide (and consume) a lost response for a shipment POST that did its work."""
        with self.lock:
            if self.config["lose_next"] > 0:
                self.config["lose_next"] -= 1
                self.counters["lost_responses"] += 1
                return True
            rate = self.config["lost_response_rate"]
            if rate > 0 and self.random.random() < rate:
                self.counters["lost_responses"] += 1
                return True
            return False

    # -- shipments -----------------------------------------------------------------------------

    @staticmethod
    def fingerprint(body: Any) -> str:
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    def _replay_locked(self, key: str, fingerprint: str) -> tuple[int, dict[str, Any]] | None:
        existing_id = self.by_idempotency_key.get(key)
        if existing_id is None:
            return None
        shipment = self.shipments[existing_id]
        if shipment["_fingerprint"] != fingerprint:
            return 409, {
                "error": {
                    "code": "idempotency_conflict",
                    "message": "This Idempotency-Key was already used with a different "
                    "request body.",
                }
            }
        shipment["create_calls"] += 1
        return 200, self._public(shipment)

    def replay(self, key: str, body: Any) -> tuple[int, dict[str, Any]] | None:
        """For a key already used: (200, shipment) or (409, error); None for a new key."""
        fingerprint = self.fingerprint(body)
        with self.lock:
            result = self._replay_locked(key, fingerprint)
            if result is not None:
                self.counters["create_requests"] += 1
            return result

    def create_or_replay(self, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Create a shipment for this idempotency key, or replay the one it already made.

        Returns (HTTP status, payload): 201 new, 200 replay, 409 key reused with another body.
        """
        fingerprint = self.fingerprint(body)
        with self.lock:
            self.counters["create_requests"] += 1
            result = self._replay_locked(key, fingerprint)
            if result is not None:
                return result
            shipment_id = "shp_" + secrets.token_hex(12)
            while True:
                tracking = f"SP{self.random.randrange(10**12):012d}"
                if tracking not in self.tracking_numbers:
                    break
            self.tracking_numbers.add(tracking)
            shipment = {
                "id": shipment_id,
                "reference": body["reference"],
                "carrier": CARRIER,
                "tracking_number": tracking,
                "recipient": copy.deepcopy(body["recipient"]),
                "parcel": copy.deepcopy(body.get("parcel")),
                "idempotency_key": key,
                "create_calls": 1,
                "_created_ts": time.time(),
                "_fingerprint": fingerprint,
            }
            self.shipments[shipment_id] = shipment
            self.by_idempotency_key[key] = shipment_id
            return 201, self._public(shipment)

    def get_shipment(self, shipment_id: str) -> dict[str, Any] | None:
        with self.lock:
            shipment = self.shipments.get(shipment_id)
            return None if shipment is None else self._public(shipment)

    def all_shipments(self) -> list[dict[str, Any]]:
        with self.lock:
            shipments = sorted(self.shipments.values(), key=lambda s: s["_created_ts"])
            return [self._public(s, internal=True) for s in shipments]

    def get_counters(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counters)

    def _public(self, shipment: dict[str, Any], internal: bool = False) -> dict[str, Any]:
        # Caller holds the lock.
        created = shipment["_created_ts"]
        transit = self.config["transit_seconds"]
        delivery = max(self.config["delivery_seconds"], transit)
        elapsed = time.time() - created
        events = [{"status": "created", "at": _isoformat(created)}]
        status = "created"
        if elapsed >= transit:
            status = "in_transit"
            events.append({"status": "in_transit", "at": _isoformat(created + transit)})
        if elapsed >= delivery:
            status = "delivered"
            events.append({"status": "delivered", "at": _isoformat(created + delivery)})
        data = {
            "id": shipment["id"],
            "reference": shipment["reference"],
            "carrier": shipment["carrier"],
            "tracking_number": shipment["tracking_number"],
            "status": status,
            "created_at": _isoformat(created),
            "recipient": copy.deepcopy(shipment["recipient"]),
            "parcel": copy.deepcopy(shipment["parcel"]),
            "events": events,
        }
        if internal:
            data["idempotency_key"] = shipment["idempotency_key"]
            data["create_calls"] = shipment["create_calls"]
        return data


class _DropConnection(Exception):
    """Raised inside a handler to close the connection without sending any response."""


class SimulatorRequestHandler(BaseHTTPRequestHandler):
    server_version = "ShippingPartnerSimulator/1.0"
    protocol_version = "HTTP/1.1"
    server: _SimulatorHTTPServer

    # -- plumbing ------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        started = time.monotonic()
        self._status: int | str = "-"
        self._pending_body: bytes | None = None
        try:
            self._dispatch(method)
        except _DropConnection:
            self._status = "dropped"
            self.close_connection = True
        except Exception as exc:  # never let a bug kill the handler thread silently
            sys.stderr.write(f"shipping-simulator: internal error: {exc!r}\n")
            self._headers_buffer = []
            self.close_connection = True
            self._send_json(500, {"error": {"code": "internal", "message": str(exc)}})
        # Log before the response leaves, so the line is written while the client still waits.
        elapsed_ms = (time.monotonic() - started) * 1000
        sys.stderr.write(
            f"{_isoformat(time.time())} shipping-simulator {self.client_address[0]} "
            f'"{method} {self.path}" {self._status} {elapsed_ms:.1f}ms\n'
        )
        sys.stderr.flush()
        if self._pending_body is not None:
            try:
                self.end_headers()
                self.wfile.write(self._pending_body)
            except OSError:  # the client went away
                self.close_connection = True

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _handle logs one line per request instead

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode()
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self._pending_body = body  # sent by _handle, after the log line

    def _error(self, status: int, code: str, message: str, **extra: Any) -> None:
        self._send_json(status, {"error": {"code": code, "message": message, **extra}})

    def _read_body(self) -> bytes | None:
        """Read the request body; None (after answering 400/413) when unusable."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            self._error(400, "invalid_request", "Chunked request bodies are not supported.")
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._error(400, "invalid_request", "Invalid Content-Length header.")
            return None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._error(413, "invalid_request", "Request body too large.")
            return None
        return self.rfile.read(length) if length else b""

    def _read_json(self) -> tuple[bool, Any]:
        raw = self._read_body()
        if raw is None:
            return False, None
        if not raw.strip():
            return True, None
        try:
            return True, json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._error(400, "invalid_request", f"Malformed JSON body: {exc}")
            return False, None

    # -- routing -------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        if path.startswith("/_sim/"):
            self._dispatch_control(method, path)
        elif path == "/v1" or path.startswith("/v1/"):
            self._dispatch_api(method, path)
        else:
            self._read_body()
            self._error(404, "not_found", f"No such endpoint: {path}")

    def _dispatch_control(self, method: str, path: str) -> None:
        state = self.server.state
        if path == "/_sim/health" and method == "GET":
            self._send_json(200, {"status": "ok"})
        elif path == "/_sim/config" and method == "GET":
            self._send_json(200, state.get_config())
        elif path == "/_sim/config" and method == "POST":
            ok, body = self._read_json()
            if not ok:
                return
            clean, errors = _validate_config_update(body if body is not None else {})
            if errors:
                self._error(400, "invalid_request", "Invalid configuration.", fields=errors)
                return
            self._send_json(200, state.update_config(clean))
        elif path == "/_sim/reset" and method == "POST":
            self._read_body()
            state.reset()
            self._send_json(200, {"status": "reset", "config": state.get_config()})
        elif path == "/_sim/shipments" and method == "GET":
            self._send_json(
                200, {"shipments": state.all_shipments(), "counters": state.get_counters()}
            )
        elif path in ("/_sim/health", "/_sim/config", "/_sim/reset", "/_sim/shipments"):
            self._read_body()
            self._error(405, "method_not_allowed", f"{method} is not allowed on {path}.")
        else:
            self._read_body()
            self._error(404, "not_found", f"No such endpoint: {path}")

    def _dispatch_api(self, method: str, path: str) -> None:
        state = self.server.state
        raw = self._read_body()
        if raw is None:
            return
        if not self._authorized():
            self._error(401, "unauthorized", "Missing or invalid API key (Authorization: Bearer).")
            return
        latency = state.latency_seconds()
        if latency > 0:
            time.sleep(latency)
        is_create = method == "POST" and path == "/v1/shipments"
        if state.should_fail(is_create=is_create):
            self._error(503, "service_unavailable", "Simulated partner outage, retry later.")
            return
        if path == "/v1/shipments":
            if method != "POST":
                self._error(405, "method_not_allowed", f"{method} is not allowed on {path}.")
                return
            self._create_shipment(raw)
            return
        match = _SHIPMENT_PATH.match(path)
        if match:
            if method != "GET":
                self._error(405, "method_not_allowed", f"{method} is not allowed on {path}.")
                return
            shipment = state.get_shipment(match["id"])
            if shipment is None:
                self._error(404, "not_found", f"No such shipment: {match['id']}")
            else:
                self._send_json(200, shipment)
            return
        self._error(404, "not_found", f"No such endpoint: {path}")

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        return hmac.compare_digest(token.strip().encode(), self.server.state.api_key.encode())

    def _create_shipment(self, raw: bytes) -> None:
        state = self.server.state
        key = (self.headers.get("Idempotency-Key") or "").strip()
        if not key:
            self._error(
                400,
                "invalid_request",
                "The Idempotency-Key header is required.",
                fields={"Idempotency-Key": "This header is required."},
            )
            return
        if len(key) > 255:
            self._error(
                400,
                "invalid_request",
                "The Idempotency-Key header is too long.",
                fields={"Idempotency-Key": "At most 255 characters."},
            )
            return
        try:
            body = json.loads(raw) if raw.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._error(400, "invalid_request", f"Malformed JSON body: {exc}")
            return
        result = state.replay(key, body)
        if result is not None:  # key already used: same body -> replay, other body -> 409
            self._respond_create(*result)
            return
        errors = _validate_shipment_request(body)
        if errors:
            self._error(400, "invalid_request", "Invalid shipment request.", fields=errors)
            return
        postal_code = body["recipient"]["postal_code"].strip()
        if postal_code == UNDELIVERABLE_POSTAL_CODE:
            self._error(
                422,
                "undeliverable",
                f"Address is undeliverable: postal code {UNDELIVERABLE_POSTAL_CODE}",
            )
            return
        self._respond_create(*state.create_or_replay(key, body))

    def _respond_create(self, status: int, payload: dict[str, Any]) -> None:
        state = self.server.state
        if status in (200, 201) and state.should_lose_response():
            raise _DropConnection
        headers = {"Idempotent-Replayed": "true"} if status == 200 else None
        self._send_json(status, payload, headers)


class _SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: SimulatorState) -> None:
        self.state = state
        super().__init__(address, SimulatorRequestHandler)


class SimulatorServer:
    """A running simulator: ``.url``, ``.port``, ``.state``, ``.stop()``; a context manager."""

    def __init__(self, httpd: _SimulatorHTTPServer) -> None:
        self._httpd = httpd
        self.state = httpd.state
        self.host, self.port = httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.api_key = httpd.state.api_key
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"shipping-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._stopped = False

    def configure(self, **options: Any) -> dict[str, Any]:
        clean, errors = _validate_config_update(options)
        if errors:
            raise ValueError(f"invalid simulator configuration: {errors}")
        return self.state.update_config(clean)

    def reset(self) -> None:
        self.state.reset()

    def shipments(self) -> list[dict[str, Any]]:
        return self.state.all_shipments()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SimulatorServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_simulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    api_key: str = "dev-partner-key",
    seed: int | None = None,
    **options: Any,
) -> SimulatorServer:
    """Start the simulator in a daemon thread; ``port=0`` picks a free port.

    ``options`` are any of: latency_ms, failure_rate, lost_response_rate, fail_next, lose_next,
    transit_seconds, delivery_seconds. ``POST /_sim/reset`` returns to these values.
    """
    clean, errors = _validate_config_update(options)
    if errors:
        raise ValueError(f"invalid simulator configuration: {errors}")
    state = SimulatorState(api_key=api_key, config={**DEFAULT_CONFIG, **clean}, seed=seed)
    httpd = _SimulatorHTTPServer((host, port), state)
    return SimulatorServer(httpd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shipping.simulator", description="Local shipping partner simulator."
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8430, help="port (default 8430, 0 = any)")
    parser.add_argument("--api-key", default="dev-partner-key", help="expected Bearer token")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--lost-response-rate", type=float, default=0.0)
    parser.add_argument("--fail-next", type=int, default=0)
    parser.add_argument("--lose-next", type=int, default=0)
    parser.add_argument("--transit-seconds", type=float, default=5.0)
    parser.add_argument("--delivery-seconds", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=None, help="seed for the fault dice")
    args = parser.parse_args(argv)

    try:
        server = start_simulator(
            host=args.host,
            port=args.port,
            api_key=args.api_key,
            seed=args.seed,
            latency_ms=args.latency_ms,
            failure_rate=args.failure_rate,
            lost_response_rate=args.lost_response_rate,
            fail_next=args.fail_next,
            lose_next=args.lose_next,
            transit_seconds=args.transit_seconds,
            delivery_seconds=args.delivery_seconds,
        )
    except ValueError as exc:
        parser.error(str(exc))
    except OSError as exc:
        sys.stderr.write(f"shipping-simulator: cannot listen on {args.host}:{args.port}: {exc}\n")
        return 1

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    sys.stderr.write(f"shipping-simulator: listening on {server.url}\n")
    sys.stderr.flush()
    while not stop.wait(0.5):
        pass
    sys.stderr.write("shipping-simulator: shutting down\n")
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
