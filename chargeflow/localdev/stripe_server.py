"""localstripe (a stateful Stripe API emulator) bound to loopback, with its own state per instance.

Development and tests only. Standalone: imports localstripe/aiohttp and the standard library, never
Django or project code.

``python -m localstripe`` binds every interface (``::``) and reads/writes one fixed pickle file,
``/tmp/localstripe.pickle``, on every change, so two instances share (and clobber) their state. This
wrapper serves the same aiohttp app, but:

- binds ``--host`` (default 127.0.0.1) only;
- keeps state in memory (fresh on every start) unless ``--state-file PATH`` is given, in which case
  that file is loaded at start and rewritten atomically after each mutating request and at exit;
- can register a webhook endpoint at start (``--webhook-url``/``--webhook-secret``).

Run it::

    python -m chargeflow.localdev.stripe_server --host 127.0.0.1 --port 8420 [--state-file PATH]

or from Python (pytest fixtures); the server runs in a child process (localstripe's state is a
module-level global, so one process per instance is what keeps instances apart)::

    server = start_stripe_server(port=0)
    stripe.api_base = server.url
    ...
    server.stop()

Fake Stripe.js: ``<script src="{url}/js.stripe.com/v3/">``. Webhooks can also be registered at
runtime: ``POST {url}/_config/webhooks/{any id}`` with form or JSON fields ``url``, ``secret`` and
optional ``events`` (list of event types). ``DELETE {url}/_config/data`` wipes all objects.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import pickle
import select
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from pathlib import Path
from typing import IO, Any

READY_PREFIX = "LOCALSTRIPE_READY "
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs'


# ---------------------------------------------------------------------------------------------
# Server side (runs in the child process / the CLI)
# ---------------------------------------------------------------------------------------------


def _isolate_store(state_file: Path | None) -> None:
    """Point localstripe's global store at our own persistence (or none at all).

    localstripe's ``Store`` pickles itself to /tmp/localstripe.pickle on every ``__setitem__`` and
    after every POST/PUT/DELETE (``store.dump_to_disk()`` in its middleware). We swap the class of
    that one store object for a subclass whose writes only go to ``state_file`` (atomically, once
    per mutating request) or nowhere.
    """
    from localstripe import resources

    class InstanceStore(resources.Store):
        _state_file: Path | None = state_file

        def __setitem__(self, key: Any, value: Any) -> None:
            dict.__setitem__(self, key, value)

        def __delitem__(self, key: Any) -> None:
            dict.__delitem__(self, key)

        def try_load_from_disk(self) -> None:
            if self._state_file is None:
                return
            try:
                with open(self._state_file, "rb") as f:
                    data = pickle.load(f)
            except FileNotFoundError:
                return
            self.clear()
            dict.update(self, data)

        def dump_to_disk(self) -> None:
            if self._state_file is None:
                return
            directory = self._state_file.parent
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".localstripe-", suffix=".tmp", dir=directory)
            try:
                with os.fdopen(fd, "wb") as f:
                    pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, self._state_file)
            except BaseException:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
                raise

    store = resources.store
    store.__class__ = InstanceStore
    store.clear()
    store.try_load_from_disk()


# localstripe's stand-in Stripe.js has `createPaymentMethod: async () => {}` (a no-op), and its
# server takes a publishable key only on a few routes (tokens, sources, 3-D Secure), not on
# POST /v1/payment_methods, which real Stripe.js calls from the browser. These complete it, so the
# storefront's checkout uses the real Stripe.js API (`stripe.createPaymentMethod({type: "card",
# card: element})`) and the card number goes browser -> (fake) Stripe, never to our server.
_CREATE_PAYMENT_METHOD_JS = r"""
// chargeflow.localdev: createPaymentMethod for the stand-in Card Element.
Stripe = (function (makeStripe) {
  function digitsOf(number) {
    return String(number).replace(/[\s-]/g, "");
  }
  // The stand-in moves on to the expiry month after 16 characters, spaces included: with a
  // number typed in groups ("4242 4242 4242 4242") it stays in the number until 16 digits.
  function keepTypingTheNumber(element) {
    const mount = element.mount;
    element.mount = function () {
      const result = mount.apply(this, arguments);
      const input = this._inputs && this._inputs.number;
      if (input && input.oninput) {
        const onInput = input.oninput;
        input.oninput = function (event) {
          onInput.call(this, event);
          if (digitsOf(input.value).length < 16 && document.activeElement !== input) {
            input.focus();
          }
        };
      }
      return result;
    };
    return element;
  }
  return function (apiKey, options) {
    const stripe = makeStripe(apiKey, options);
    const elements = stripe.elements;
    stripe.elements = function () {
      const group = elements.apply(this, arguments);
      const create = group.create;
      group.create = function (type) {
        const element = create.apply(this, arguments);
        return type === "card" ? keepTypingTheNumber(element) : element;
      };
      return group;
    };
    stripe.createPaymentMethod = async function (params, element, data) {
      if (typeof params === "string") params = {type: params, card: element, ...(data || {})};
      const entered = params.card && params.card.value && params.card.value.card;
      if (!entered || !entered.number || !entered.exp_month || !entered.cvc) {
        return {error: {type: "validation_error", code: "incomplete_number",
                        message: "Your card details are incomplete."}};
      }
      // Like Stripe Elements: the number may be typed with spaces or dashes ("4242 4242 ...");
      // localstripe's server takes digits only.
      const card = {...entered, number: digitsOf(entered.number)};
      if (!/^[0-9]{12,19}$/.test(card.number)) {
        return {error: {type: "validation_error", code: "invalid_number",
                        message: "Your card number is invalid."}};
      }
      const response = await fetch(`${LOCALSTRIPE_BASE_API}/v1/payment_methods`, {
        method: "POST",
        body: JSON.stringify({key: apiKey, type: "card", card: card,
                              billing_details: params.billing_details || {}}),
      });
      const body = await response.json().catch(() => ({}));
      if (response.status !== 200 || body.error) {
        return {error: body.error || {message: "Your card details were refused."}};
      }
      return {paymentMethod: body};
    };
    return stripe;
  };
})(Stripe);
"""


def _complete_elements(app: Any) -> None:
    """Serve createPaymentMethod (see above): an outermost middleware on localstripe's app."""
    from aiohttp import web
    from localstripe import server as ls_server
    from localstripe.errors import UserError
    from localstripe.resources import PaymentMethod

    @web.middleware
    async def elements_middleware(request: Any, handler: Any) -> Any:
        if request.method == "GET" and request.path == "/js.stripe.com/v3/":
            response = await handler(request)
            return web.Response(
                text=response.text + _CREATE_PAYMENT_METHOD_JS,
                content_type="application/javascript",
            )
        if (
            request.method == "POST"
            and request.path == "/v1/payment_methods"
            and "Authorization" not in request.headers
        ):
            data = await ls_server.get_post_data(request, remove_auth=False) or {}
            if not str(data.pop("key", "")).startswith("pk_"):
                return await handler(request)
            data.pop("payment_user_agent", None)
            try:
                method = PaymentMethod._api_create(**data)
            except UserError as exc:
                return exc.to_response()
            return ls_server.json_response(method._export())
        return await handler(request)

    app.middlewares.insert(0, elements_middleware)


def serve(
    host: str = "127.0.0.1",
    port: int = 8420,
    *,
    state_file: str | os.PathLike[str] | None = None,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    webhook_events: list[str] | None = None,
    ready_stdout: bool = False,
) -> None:
    """Serve localstripe in this process until SIGINT/SIGTERM (blocking)."""
    logger = logging.getLogger("aiohttp.access")
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s localstripe %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    logger.addHandler(handler)
    logger.propagate = False

    path = Path(state_file).resolve() if state_file else None
    from aiohttp import web
    from localstripe import server as ls_server
    from localstripe.webhooks import register_webhook

    _isolate_store(path)
    _complete_elements(ls_server.app)
    if webhook_url:
        register_webhook("default", webhook_url, webhook_secret or "whsec_localdev", webhook_events)

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    bound_port = sock.getsockname()[1]
    url = f"http://{host if family == socket.AF_INET else f'[{host}]'}:{bound_port}"

    def announce(*_args: Any) -> None:
        sys.stderr.write(f"localstripe: listening on {url} (state: {path or 'in memory, fresh'})\n")
        sys.stderr.flush()
        if ready_stdout:
            sys.stdout.write(f"{READY_PREFIX}{bound_port}\n")
            sys.stdout.flush()
            # Nothing else may go to the launcher's pipe: send any later stdout to stderr.
            os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    try:
        web.run_app(
            ls_server.app,
            sock=sock,
            access_log=logger,
            access_log_format=ACCESS_LOG_FORMAT,
            print=announce,
            handle_signals=True,
            shutdown_timeout=2.0,
        )
    finally:
        ls_server.store.dump_to_disk()
        sys.stderr.write("localstripe: stopped\n")
        sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chargeflow.localdev.stripe_server",
        description="localstripe bound to loopback, with per-instance state.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8420, help="port (default 8420, 0 = any)")
    parser.add_argument(
        "--state-file",
        default=None,
        help="persist objects in this pickle file (default: in memory, fresh on every start)",
    )
    parser.add_argument("--webhook-url", default=None, help="deliver webhook events here")
    parser.add_argument("--webhook-secret", default="whsec_localdev", help="signing secret")
    parser.add_argument(
        "--webhook-events", default=None, help="comma-separated event types (default: all)"
    )
    parser.add_argument("--ready-stdout", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    events = [e.strip() for e in args.webhook_events.split(",")] if args.webhook_events else None
    try:
        serve(
            args.host,
            args.port,
            state_file=args.state_file,
            webhook_url=args.webhook_url,
            webhook_secret=args.webhook_secret,
            webhook_events=events,
            ready_stdout=args.ready_stdout,
        )
    except OSError as exc:
        sys.stderr.write(f"localstripe: cannot listen on {args.host}:{args.port}: {exc}\n")
        return 1
    return 0


# ---------------------------------------------------------------------------------------------
# Launcher side (pytest fixtures, scripts)
# ---------------------------------------------------------------------------------------------

_running: weakref.WeakSet[StripeServer] = weakref.WeakSet()


class StripeServer:
    """A localstripe child process: ``.url``, ``.port``, ``.process``, ``.stop()``."""

    def __init__(self, process: subprocess.Popen[str], host: str, port: int) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self.js_url = f"{self.url}/js.stripe.com/v3/"
        _running.add(self)

    def register_webhook(
        self, url: str, secret: str, events: list[str] | None = None, name: str = "default"
    ) -> None:
        """Have localstripe POST (signed) events to ``url``."""
        fields: list[tuple[str, str]] = [("url", url), ("secret", secret)]
        fields += [("events[]", e) for e in events or []]
        body = urllib.parse.urlencode(fields).encode()
        request = urllib.request.Request(
            f"{self.url}/_config/webhooks/{name}", data=body, method="POST"
        )
        with urllib.request.urlopen(request, timeout=5):
            pass

    def flush(self) -> None:
        """Delete every object (``DELETE /_config/data``)."""
        request = urllib.request.Request(f"{self.url}/_config/data", method="DELETE")
        with urllib.request.urlopen(request, timeout=5):
            pass

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        _running.discard(self)

    def __enter__(self) -> StripeServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_running):
        try:
            server.stop(timeout=2.0)
        except Exception:
            pass


def _read_ready_line(stream: IO[str], deadline: float) -> str | None:
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        readable, _, _ = select.select([stream], [], [], remaining)
        if readable:
            line = stream.readline()
            if not line:  # EOF: the child died
                return None
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX) :].strip()


def start_stripe_server(
    port: int = 0,
    host: str = "127.0.0.1",
    *,
    state_file: str | os.PathLike[str] | None = None,
    webhook_url: str | None = None,
    webhook_secret: str = "whsec_localdev",
    webhook_events: list[str] | None = None,
    stderr: int | IO[Any] | None = None,
    python: str | None = None,
    timeout: float = 20.0,
) -> StripeServer:
    """Start localstripe in a child process and wait until it answers HTTP.

    ``port=0`` picks a free port (the child reports the one it bound). The child's log lines go to
    ``stderr`` (default: inherited). Raises ``RuntimeError`` if it does not come up in ``timeout``.
    """
    cmd = [
        python or sys.executable,
        # Run the file, not ``-m chargeflow.localdev...``: that would import the ``chargeflow``
        # package (Celery, Django settings) in the child for nothing.
        str(Path(__file__).resolve()),
        "--host",
        host,
        "--port",
        str(port),
        "--ready-stdout",
    ]
    if state_file:
        cmd += ["--state-file", os.fspath(state_file)]
    if webhook_url:
        cmd += ["--webhook-url", webhook_url, "--webhook-secret", webhook_secret]
        if webhook_events:
            cmd += ["--webhook-events", ",".join(webhook_events)]
    process = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    reported = _read_ready_line(process.stdout, deadline)
    if reported is None:
        process.kill()
        process.wait()
        process.stdout.close()
        raise RuntimeError(
            f"localstripe did not start on {host}:{port} (exit code {process.returncode})"
        )
    server = StripeServer(process, host, int(reported))
    # The socket was listening before the ready line; make sure the app really answers.
    while True:
        try:
            with urllib.request.urlopen(server.js_url, timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            server.stop()
            raise RuntimeError(f"localstripe on {server.url} does not answer")
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
