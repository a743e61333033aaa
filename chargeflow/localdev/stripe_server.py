"""localstripe (a stateful Stripe API emulator) bound to loopback, with its own state per instance.

Development and tests only. Standalone: imports localstripe/aiohttp and the standard library, never
Django or project code.

``python -m localstripe`` binds every interface (``::``) and reads/writes one fixed pickle file,
``/tmp/localstripe.pickle``, on every change, so two instances share (and clobber) their state. This
wrapper serves the same aiohttp app, but:

- binds ``--host`` (default 127.0.0.1) only;
- keeps state in memory (fresh on every start) unless ``--state-file PATH`` is given, in which case
  that file is loaded at start and rewritten atomically within a second of each mutating request
  and at exit;
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
optional ``events`` (list of event types). ``DELETE {url}/_config/data`` wipes all objects (and
the idempotency keys).

Where localstripe differs from Stripe on our money path, this wrapper makes it behave like Stripe:

- ``Idempotency-Key`` (POST /v1/...): the same key with the same parameters answers the first
  answer (status and body, header ``Idempotent-Replayed: true``) without running again; another
  endpoint or other parameters -> 400 ``idempotency_error``. Saved: 2xx and 402 (a decline is
  replayed as the decline); localstripe's other 4xx are validation failures and are not saved.
  Duplicates arriving together are serialised per key. Kept 24 h, in the state file if any.
- ``GET /v1/payment_intents?customer=cus_...`` filters (localstripe refused any filter there).
  Charges (``customer``), refunds (``charge``/``payment_intent``), payment methods
  (``customer`` + ``type``, required) and customers (``email``) were already filtered.
- Confirm with a payment method: ``POST /v1/payment_intents/{id}/confirm`` takes
  ``payment_method`` (or ``payment_method_data``) with the secret key, and from the browser with
  ``key=pk_...`` and the ``client_secret``. A decline (402 ``card_error`` with ``code``,
  ``decline_code``, ``payment_intent``) or a failed 3-D Secure leaves ``requires_payment_method``
  with no payment method, and the same intent can be confirmed again with another card.
- Every Stripe decline test card is declined with Stripe's codes (``_DECLINES``; localstripe
  declined 4000000000000341 only); test ids ``pm_card_threeDSecure2Required``,
  ``pm_card_authenticationRequired``... exist (``_TEST_PAYMENT_METHODS``).
- Manual capture: ``amount_capturable``/``amount_received``; capturing or cancelling in the wrong
  status -> 400 ``payment_intent_unexpected_state`` with Stripe's message (localstripe: "Bad
  request", or a 500 for capture without a charge); cancelling an authorization refunds the
  uncaptured charge (released); ``cancellation_reason`` kept; partial capture with
  ``amount_to_capture``.
- Stripe.js shim (``_STRIPE_JS_SHIM``): ``createPaymentMethod``, ``confirmCardPayment`` (card
  element, PaymentMethod id or none; 3-D Secure in localstripe's modal), ``handleCardAction``,
  ``retrievePaymentIntent``.

Webhook events sent for PaymentIntents (about 1 s later, signed): ``payment_intent.succeeded``
(automatic capture on confirm, or capture), ``payment_intent.payment_failed`` (decline; failed
3-D Secure, added here), ``payment_intent.amount_capturable_updated`` (manual capture reached
``requires_capture``, added here), ``payment_intent.canceled`` (added here). Not sent:
``payment_intent.created``, ``.requires_action``, ``.processing``, any ``charge.*`` event.
Also sent by localstripe: ``customer.*``, ``invoice.*``, ``plan.created``, ``product.created``,
``payout.*``, ``balance.available``. localstripe never retries a failed delivery.

- Refunds: at most what the charge has left (400 ``amount_too_large`` /
  ``charge_already_refunded``; without ``amount``: what is left), and only of a ``succeeded``
  PaymentIntent (localstripe refunded the whole charge again, and cancelled authorizations).

Still not like Stripe: lists are oldest first (Stripe: newest first); ``latest_charge`` is an
embedded object, not an id; the publishable key is not checked against the secret key; no
``payment_intent.created`` event; authorizations never expire.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import logging
import os
import pickle
import re
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


# With a state file, the store is written at most this often (and at exit): it is pickled whole,
# so a write per request would cost more with every object stored.
STATE_WRITE_INTERVAL_SECONDS = 1.0


def _isolate_store(state_file: Path | None) -> None:
    """Point localstripe's global store at our own persistence (or none at all), and index it.

    localstripe's ``Store`` pickles itself to /tmp/localstripe.pickle on every ``__setitem__`` and
    after every POST/PUT/DELETE (``store.dump_to_disk()`` in its middleware). We swap the class of
    that one store object for a subclass whose writes only go to ``state_file`` (atomically, at
    most once a second after a mutating request, and at exit) or nowhere.

    localstripe also finds objects of a type by scanning the whole store (every list, and each
    Charge's export lists the charge's refunds three times: ``refunds``, ``amount_refunded``,
    ``refunded``), so every request cost more with every object ever stored (issue 11: its CPU
    per order grew 5 -> 49 ms over 1,200 orders). The store keeps its objects by type, and the
    refunds by charge; lists and a charge's refunds read those (``_index_lookups``).
    """
    from localstripe import resources

    class InstanceStore(resources.Store):
        _state_file: Path | None = state_file

        def __setitem__(self, key: Any, value: Any) -> None:
            dict.__setitem__(self, key, value)
            kind, colon, _ = str(key).partition(":")
            if colon:
                self._by_type.setdefault(kind, {})[key] = value

        def __delitem__(self, key: Any) -> None:
            dict.__delitem__(self, key)
            kind, colon, _ = str(key).partition(":")
            if colon:
                self._by_type.get(kind, {}).pop(key, None)
                if kind == "refund":
                    self._index_refunds()

        def clear(self) -> None:
            dict.clear(self)
            self._reindex()

        def of_type(self, kind: str) -> list[Any]:
            """The objects whose key is ``<kind>:<id>``, in the store's order."""
            return list(self._by_type.get(kind, {}).values())

        def refunds_of(self, charge_id: str) -> list[Any]:
            return list(self._refunds_by_charge.get(charge_id, ()))

        def add_refund(self, refund: Any) -> None:
            charge = getattr(refund, "charge", None)  # None while its __init__ runs
            if charge is not None:
                self._refunds_by_charge.setdefault(charge, []).append(refund)

        def _reindex(self) -> None:
            self._by_type: dict[str, dict[Any, Any]] = {}
            for key, value in dict.items(self):
                kind, colon, _ = str(key).partition(":")
                if colon:
                    self._by_type.setdefault(kind, {})[key] = value
            self._index_refunds()

        def _index_refunds(self) -> None:
            self._refunds_by_charge: dict[str, list[Any]] = {}
            for refund in self._by_type.get("refund", {}).values():
                self.add_refund(refund)

        def try_load_from_disk(self) -> None:
            if self._state_file is None:
                return
            try:
                with open(self._state_file, "rb") as f:
                    data = pickle.load(f)
            except FileNotFoundError:
                return
            dict.clear(self)
            dict.update(self, data)
            self._reindex()

        def dump_to_disk(self) -> None:
            """Write the state file soon: at most once per STATE_WRITE_INTERVAL_SECONDS."""
            if self._state_file is None or self._write_scheduled:
                return
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not serving (start, exit): now
                self.write_to_disk()
                return
            self._write_scheduled = True
            loop.call_later(STATE_WRITE_INTERVAL_SECONDS, self.write_to_disk)

        def write_to_disk(self) -> None:
            self._write_scheduled = False
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
    store._write_scheduled = False
    store.clear()
    store.try_load_from_disk()
    _index_lookups(resources, store)


def _index_lookups(r: Any, store: Any) -> None:
    """localstripe's lists and a Charge's refunds from the store's indexes instead of a scan of
    every object (same objects, same order)."""
    from localstripe.errors import UserError

    def _api_list_all(cls: Any, url: str, limit: Any = None, starting_after: Any = None, **kw: Any):
        if kw:
            raise UserError(400, "Unexpected " + ", ".join(kw.keys()))
        li = r.List(url, limit=limit, starting_after=starting_after)
        li._list = store.of_type(cls.object)
        return li

    r.StripeObject._api_list_all = classmethod(_api_list_all)

    def refunds(self: Any) -> Any:
        # Refund._api_list_all(url, charge=self.id): the charge's refunds, newest first.
        li = r.List("/v1/charges/" + self.id + "/refunds")
        li._list = sorted(store.refunds_of(self.id), key=lambda i: i.date, reverse=True)
        return li

    r.Charge.refunds = property(refunds)

    original_refund_init = r.Refund.__init__

    def refund_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_refund_init(self, *args, **kwargs)
        store.add_refund(self)

    r.Refund.__init__ = refund_init


# localstripe's stand-in Stripe.js has `createPaymentMethod: async () => {}` (a no-op) and a
# `confirmCardPayment` that ignores its data and always opens the 3-D Secure dialog; its server
# takes a publishable key only on a few routes (tokens, sources, 3-D Secure), not on
# POST /v1/payment_methods or /confirm, which real Stripe.js calls from the browser. These
# complete it, so the storefront uses the real Stripe.js API (`stripe.createPaymentMethod(...)`,
# `stripe.confirmCardPayment(clientSecret, {payment_method: {card: element, billing_details}})`)
# and the card number goes browser -> (fake) Stripe, never to our server.
_STRIPE_JS_SHIM = r"""
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
    // The card entered in the stand-in Card Element, as localstripe's server takes it.
    function cardOf(element) {
      const entered = element && element.value && element.value.card;
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
      return {card: card};
    }
    async function post(path, body) {
      const response = await fetch(`${LOCALSTRIPE_BASE_API}${path}`, {
        method: "POST", body: JSON.stringify({key: apiKey, ...body}),
      });
      const answer = await response.json().catch(() => ({}));
      return {ok: response.status === 200 && !answer.error, answer: answer};
    }
    function intentIdOf(clientSecret) {
      const match = /^(pi_[A-Za-z0-9]+)_secret_/.exec(String(clientSecret || ""));
      return match && match[1];
    }
    function badSecret() {
      return {error: {type: "invalid_request_error", code: "parameter_invalid",
                      message: "Invalid value for clientSecret: expected a PaymentIntent " +
                               "client secret (pi_..._secret_...)."}};
    }
    function authenticationFailed(intent) {
      const error = intent.last_payment_error || {};
      return {error: {type: "invalid_request_error",
                      code: error.code || "payment_intent_authentication_failure",
                      message: error.message ||
                               "We are unable to authenticate your payment method.",
                      payment_method: error.payment_method, payment_intent: intent}};
    }
    stripe.createPaymentMethod = async function (params, element, data) {
      if (typeof params === "string") params = {type: params, card: element, ...(data || {})};
      const entered = cardOf(params.card);
      if (entered.error) return entered;
      const {ok, answer} = await post("/v1/payment_methods", {
        type: "card", card: entered.card, billing_details: params.billing_details || {},
      });
      if (!ok) return {error: answer.error || {message: "Your card details were refused."}};
      return {paymentMethod: answer};
    };
    // Like Stripe.js: confirm (with a new card from the Card Element, a PaymentMethod id, or
    // the intent's own), run 3-D Secure in the page if the card asks for it, and answer
    // {paymentIntent} or {error} (a decline carries error.payment_intent).
    stripe.confirmCardPayment = async function (clientSecret, data, options) {
      const pi = intentIdOf(clientSecret);
      if (!pi) return badSecret();
      const body = {client_secret: clientSecret};
      const method = data && data.payment_method;
      if (typeof method === "string") {
        body.payment_method = method;
      } else if (method && method.card) {
        const entered = cardOf(method.card);
        if (entered.error) return entered;
        const billing = {...(method.billing_details || {})};
        const postal = method.card.value && method.card.value.postal_code;
        if (postal && !(billing.address && billing.address.postal_code)) {
          billing.address = {...(billing.address || {}), postal_code: postal};
        }
        body.payment_method_data = {type: "card", card: entered.card, billing_details: billing};
      }
      let {ok, answer} = await post(`/v1/payment_intents/${pi}/confirm`, body);
      if (!ok) return {error: answer.error || {message: "The payment could not be confirmed."}};
      if (answer.status === "requires_action") {
        if (options && options.handleActions === false) return {paymentIntent: answer};
        const success = await openModal("3D Secure\nDo you want to confirm or cancel?",
                                        "Complete authentication", "Fail authentication");
        ({ok, answer} = await post(`/v1/payment_intents/${pi}/_authenticate?success=${success}`,
                                   {client_secret: clientSecret}));
        if (!ok) return {error: answer.error || {message: "Authentication failed."}};
        if (answer.status === "requires_payment_method") return authenticationFailed(answer);
      }
      return {paymentIntent: answer};
    };
    stripe.handleCardAction = function (clientSecret) {
      return stripe.confirmCardPayment(clientSecret);
    };
    stripe.retrievePaymentIntent = async function (clientSecret) {
      const pi = intentIdOf(clientSecret);
      if (!pi) return badSecret();
      const query = new URLSearchParams({key: apiKey, client_secret: clientSecret});
      const response = await fetch(`${LOCALSTRIPE_BASE_API}/v1/payment_intents/${pi}?${query}`);
      const answer = await response.json().catch(() => ({}));
      if (response.status !== 200 || answer.error) return {error: answer.error || {}};
      return {paymentIntent: answer};
    };
    return stripe;
  };
})(Stripe);
"""


_INTENT_PATH = re.compile(r"^/v1/payment_intents/(pi_[A-Za-z0-9]+)(/confirm)?$")


def _complete_elements(app: Any) -> None:
    """Serve the Stripe.js shim's routes (see above): publishable key, no secret key.

    - ``POST /v1/payment_methods`` with ``key=pk_...`` (createPaymentMethod);
    - ``POST /v1/payment_intents/{id}/confirm`` with ``key=pk_...`` and the intent's
      ``client_secret`` (confirmCardPayment), optionally ``payment_method`` or
      ``payment_method_data``;
    - ``GET /v1/payment_intents/{id}?key=pk_...&client_secret=...`` (retrievePaymentIntent).
    """
    from aiohttp import web
    from localstripe import server as ls_server
    from localstripe.errors import UserError
    from localstripe.resources import PaymentIntent, PaymentMethod, store

    def publishable(data: dict) -> bool:
        return str(data.pop("key", "")).startswith("pk_")

    def run(operation: Any, *, mutating: bool) -> Any:
        try:
            result = operation()
        except UserError as exc:
            return exc.to_response()
        finally:
            if mutating:
                store.dump_to_disk()
        return ls_server.json_response(result._export())

    def intent_for(intent_id: str, client_secret: Any) -> Any:
        intent = PaymentIntent._api_retrieve(intent_id)
        if not client_secret or client_secret != intent.client_secret:
            raise UserError(401, "Unauthorized")
        return intent

    @web.middleware
    async def elements_middleware(request: Any, handler: Any) -> Any:
        if request.method == "GET" and request.path == "/js.stripe.com/v3/":
            response = await handler(request)
            return web.Response(
                text=response.text + _STRIPE_JS_SHIM,
                content_type="application/javascript",
            )
        if "Authorization" in request.headers:
            return await handler(request)
        if request.method == "POST" and request.path == "/v1/payment_methods":
            data = await ls_server.get_post_data(request, remove_auth=False) or {}
            if not publishable(data):
                return await handler(request)
            data.pop("payment_user_agent", None)
            return run(lambda: PaymentMethod._api_create(**data), mutating=True)
        match = _INTENT_PATH.match(request.path)
        if match and request.method == "POST" and match.group(2):
            data = await ls_server.get_post_data(request, remove_auth=False) or {}
            if not publishable(data):
                return await handler(request)
            data.pop("expand", None)

            def confirm() -> Any:
                intent = intent_for(match.group(1), data.get("client_secret"))
                return PaymentIntent._api_confirm(intent.id, **data)

            return run(confirm, mutating=True)
        if match and request.method == "GET" and not match.group(2):
            query = dict(request.query)
            if not publishable(query):
                return await handler(request)
            return run(
                lambda: intent_for(match.group(1), query.get("client_secret")), mutating=False
            )
        return await handler(request)

    app.middlewares.insert(0, elements_middleware)


# --- Idempotency-Key --------------------------------------------------------------------------

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# The records live in localstripe's store (so they are saved with the state file and wiped by
# DELETE /_config/data) under a key that is no "<object>:<id>" of any localstripe resource.
_IDEMPOTENCY_STORE_KEY = "chargeflow-idempotency"


def _request_parameters(body: bytes, content_type: str) -> str:
    """The request's parameters in a canonical form (order of fields does not matter)."""
    text = body.decode("utf-8", "replace")
    if "json" in content_type:
        try:
            return json.dumps(json.loads(text or "null"), sort_keys=True)
        except ValueError:
            return text
    return json.dumps(sorted(urllib.parse.parse_qsl(text, keep_blank_values=True)))


def _add_idempotency(app: Any) -> None:
    """Stripe's Idempotency-Key: a POST repeated with the same key answers the first answer.

    Saved: every answer of a request that ran (2xx, and 402 card errors, whose operation ran
    and whose state changed); localstripe's other 4xx are validation failures (nothing ran), so,
    as at Stripe, they are not saved and a retry runs again. A key reused with other parameters
    or on another endpoint -> 400 ``idempotency_error``. Duplicates that arrive together wait for
    the first (a lock per key). Records are kept 24 h (or as long as the process/state file).
    """
    from aiohttp import web
    from localstripe.resources import store

    locks: dict[str, asyncio.Lock] = {}
    waiting: dict[str, int] = {}

    def records() -> dict[str, dict[str, Any]]:
        """The saved answers, oldest first (the expired ones are dropped from the front: a
        sweep of every key on every request cost more with each key ever used)."""
        saved = dict.get(store, _IDEMPOTENCY_STORE_KEY)
        if saved is None:
            saved = {}
            dict.__setitem__(store, _IDEMPOTENCY_STORE_KEY, saved)
        oldest = next(iter(saved), None)
        if oldest is not None and saved[oldest]["at"] < time.time() - IDEMPOTENCY_TTL_SECONDS:
            del saved[oldest]  # one a call, two calls a saved key: the sweep keeps up
        return saved

    def idempotency_error(message: str) -> Any:
        body = {"error": {"type": "idempotency_error", "message": message}}
        return web.json_response(body, status=400)

    async def answer(request: Any, handler: Any, key: str) -> Any:
        endpoint = f"{request.method} {request.path}"
        parameters = _request_parameters(await request.read(), request.content_type)
        record = records().get(key)
        if record is not None and record["at"] < time.time() - IDEMPOTENCY_TTL_SECONDS:
            record = None  # expired, not yet swept
        if record is not None:
            if record["endpoint"] != endpoint:
                return idempotency_error(
                    "Keys for idempotent requests can only be used for the same endpoint they "
                    f"were first used for ('{record['endpoint']}' vs '{endpoint}'). Try using a "
                    f"key other than '{key}' if you meant to execute a different request."
                )
            if record["parameters"] != parameters:
                return idempotency_error(
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    "meant to execute a different request."
                )
            replay = web.Response(
                body=record["body"], status=record["status"], content_type="application/json"
            )
            replay.headers["Idempotent-Replayed"] = "true"
            replay.headers["Idempotency-Key"] = key
            return replay
        response = await handler(request)
        if (response.status < 400 or response.status == 402) and isinstance(response, web.Response):
            saved = records()
            saved.pop(key, None)  # an expired record of this key: the new one goes last
            saved[key] = {
                "endpoint": endpoint,
                "parameters": parameters,
                "status": response.status,
                "body": bytes(response.body),
                "at": time.time(),
            }
            store.dump_to_disk()
        response.headers["Idempotency-Key"] = key
        return response

    @web.middleware
    async def idempotency_middleware(request: Any, handler: Any) -> Any:
        key = request.headers.get("Idempotency-Key", "").strip()
        if request.method != "POST" or not key or not request.path.startswith("/v1/"):
            return await handler(request)
        if len(key) > 255:
            body = {
                "error": {
                    "type": "invalid_request_error",
                    "message": "Invalid Idempotency-Key: at most 255 characters.",
                }
            }
            return web.json_response(body, status=400)
        lock = locks.setdefault(key, asyncio.Lock())
        waiting[key] = waiting.get(key, 0) + 1
        try:
            async with lock:
                return await answer(request, handler, key)
        finally:
            waiting[key] -= 1
            if not waiting[key]:
                del waiting[key], locks[key]

    app.middlewares.insert(0, idempotency_middleware)


# ---------------------------------------------------------------------------------------------
# Where localstripe differs from Stripe on our money path (patched at start, in the child only)
# ---------------------------------------------------------------------------------------------

# Stripe's test cards that are declined when charged, with the error Stripe gives for each
# (code, decline_code, message). localstripe itself only declines 4000000000000341 and the two
# 3-D Secure-then-decline cards, all with the same code.
_DECLINES: dict[str, tuple[str, str | None, str]] = {
    "4000000000000002": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000000341": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "4000000000009987": ("card_declined", "lost_card", "Your card was declined."),
    "4000000000009979": ("card_declined", "stolen_card", "Your card was declined."),
    "4000000000000069": ("expired_card", "expired_card", "Your card has expired."),
    "4000000000000127": (
        "incorrect_cvc",
        "incorrect_cvc",
        "Your card's security code is incorrect.",
    ),
    "4000000000000119": (
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "4000008260003178": (  # 3-D Secure, then declined
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "4000008400001629": ("card_declined", "card_declined", "Your card was declined."),
}
_GENERIC_DECLINE = ("card_declined", "generic_decline", "Your card was declined.")

# Stripe's canonical test PaymentMethods that localstripe does not know (it knows pm_card_visa,
# pm_card_visa_chargeDeclined and pm_card_chargeCustomerFail).
_TEST_PAYMENT_METHODS = {
    "pm_card_threeDSecure2Required": "4000000000003220",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_authenticationRequiredOnSetup": "4000002500003155",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_visa_chargeDeclinedExpiredCard": "4000000000000069",
}

_CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
_CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
# Accepted on confirm and ignored (Stripe.js and the SDKs send them; they change nothing here).
_IGNORED_CONFIRM_PARAMS = frozenset(
    {
        "return_url",
        "use_stripe_sdk",
        "off_session",
        "error_on_requires_action",
        "payment_method_options",
        "payment_method_types",
        "setup_future_usage",
        "receipt_email",
        "shipping",
        "mandate_data",
        "payment_user_agent",
        "referrer",
    }
)

_IGNORED_CREATE_PARAMS = frozenset(
    {
        "automatic_payment_methods",
        "confirmation_method",
        "receipt_email",
        "setup_future_usage",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "shipping",
        "return_url",
        "use_stripe_sdk",
        "error_on_requires_action",
        "mandate_data",
    }
)


def _stripe_error(status: int, error_type: str, message: str, **fields: Any) -> Exception:
    """A localstripe UserError whose body is Stripe's (``type`` is not always invalid_request)."""
    from localstripe.errors import UserError

    exc = UserError(status, message, {k: v for k, v in fields.items() if v is not None})
    exc.body["error"]["type"] = error_type
    return exc


def _patch_resources() -> None:
    """Stripe's behaviour where localstripe's differs materially (see the module docstring)."""
    from localstripe import resources as r
    from localstripe.errors import UserError
    from localstripe.webhooks import schedule_webhook

    PaymentIntent, PaymentMethod, Charge = r.PaymentIntent, r.PaymentMethod, r.Charge

    def unexpected_state(intent: Any, message: str) -> Exception:
        return _stripe_error(
            400,
            "invalid_request_error",
            message,
            code="payment_intent_unexpected_state",
            payment_intent=intent._export(),
        )

    # --- declines: every Stripe decline test card, with Stripe's codes ---------------------
    def _charging_is_declined(self: Any) -> bool:
        if self.type == "card":
            return self._card_number in _DECLINES
        return original_charging_is_declined(self)

    original_charging_is_declined = PaymentMethod._charging_is_declined
    PaymentMethod._charging_is_declined = _charging_is_declined

    def _card_number_of(charge: Any) -> str | None:
        try:
            method = PaymentMethod._api_retrieve(charge.payment_method)
        except UserError:
            return None
        return getattr(method, "_card_number", None)

    def _set_auth_failure(self: Any) -> None:
        code, decline_code, message = _DECLINES.get(_card_number_of(self) or "", _GENERIC_DECLINE)
        self.status = "failed"
        self.failure_code = code
        self.failure_message = message
        self._decline_code = decline_code

    def _raise_failure(self: Any) -> None:
        raise _stripe_error(
            402,
            "card_error",
            self.failure_message,
            code=self.failure_code,
            decline_code=getattr(self, "_decline_code", None),
            charge=self.id,
        )

    Charge._set_auth_failure = _set_auth_failure
    Charge._raise_failure = _raise_failure

    def _try_get_canonical_test_article(cls: Any, id: str) -> Any:
        number = _TEST_PAYMENT_METHODS.get(id)
        if number:
            card = {"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123"}
            return PaymentMethod(type="card", card=card)
        return original_canonical(id)

    original_canonical = PaymentMethod._try_get_canonical_test_article
    PaymentMethod._try_get_canonical_test_article = classmethod(_try_get_canonical_test_article)

    # --- a failed attempt: like Stripe, the intent drops the payment method, keeps the error -
    def failed_method_export(intent: Any, method_id: str | None) -> dict | None:
        if not method_id:
            return None
        if intent.latest_charge is not None and intent.latest_charge.status == "failed":
            method_id = intent.latest_charge.payment_method
        try:
            return PaymentMethod._api_retrieve(method_id)._export()
        except UserError:
            return {"id": method_id}

    original_report_failure = PaymentIntent._report_failure

    def _report_failure(self: Any) -> None:
        self._failed_payment_method = failed_method_export(self, self.payment_method)
        self.payment_method = None  # status -> requires_payment_method, as at Stripe
        try:
            original_report_failure(self)  # payment_intent.payment_failed, then raises
        except UserError as exc:
            exc.body["error"]["payment_intent"] = self._export()
            exc.body["error"]["payment_method"] = self._failed_payment_method
            raise

    PaymentIntent._report_failure = _report_failure

    def last_payment_error(self: Any) -> dict | None:
        method = getattr(self, "_failed_payment_method", None)
        if self._authentication_failed:
            return {
                "type": "invalid_request_error",
                "code": "payment_intent_authentication_failure",
                "message": (
                    "We are unable to authenticate your payment method. Please choose a "
                    "different payment method and try again."
                ),
                "payment_method": method,
            }
        charge = self.latest_charge
        if charge is not None and charge.status == "failed":
            error = {
                "type": "card_error",
                "charge": charge.id,
                "code": charge.failure_code,
                "decline_code": getattr(charge, "_decline_code", None),
                "message": charge.failure_message,
                "payment_method": method,
            }
            return {k: v for k, v in error.items() if v is not None}
        return None

    PaymentIntent.last_payment_error = property(last_payment_error)

    def amount_capturable(self: Any) -> int:
        return self.latest_charge.amount if self.status == "requires_capture" else 0

    def amount_received(self: Any) -> int:
        charge = self.latest_charge
        if charge is None or charge.status != "succeeded" or not charge.captured:
            return 0
        return getattr(self, "_amount_captured", None) or charge.amount

    PaymentIntent.amount_capturable = property(amount_capturable)
    PaymentIntent.amount_received = property(amount_received)

    # --- confirm with a payment method (server: sk; browser: pk + client_secret) -----------
    def _api_confirm(
        cls: Any,
        id: str,
        payment_method: str | None = None,
        payment_method_data: dict | None = None,
        client_secret: str | None = None,
        capture_method: str | None = None,
        **kwargs: Any,
    ) -> Any:
        unexpected = set(kwargs) - _IGNORED_CONFIRM_PARAMS
        if unexpected:
            raise UserError(400, "Unexpected " + ", ".join(sorted(unexpected)))
        if not (isinstance(id, str) and id.startswith("pi_")):
            raise UserError(400, "Bad request")
        if payment_method is not None and payment_method_data is not None:
            raise _stripe_error(
                400,
                "invalid_request_error",
                "You cannot specify both payment_method and payment_method_data.",
            )
        if payment_method is not None and not (
            isinstance(payment_method, str) and payment_method.startswith(("pm_", "card_", "src_"))
        ):
            raise _stripe_error(
                400,
                "invalid_request_error",
                f"No such PaymentMethod: '{payment_method}'",
                code="resource_missing",
                param="payment_method",
            )
        intent = cls._api_retrieve(id)
        if client_secret is not None and client_secret != intent.client_secret:
            raise _stripe_error(
                400,
                "invalid_request_error",
                "The client_secret provided does not match the client_secret associated with "
                "the PaymentIntent.",
                param="client_secret",
            )
        status = intent.status
        if status not in _CONFIRMABLE:
            raise unexpected_state(
                intent,
                f"You cannot confirm this PaymentIntent because it has a status of {status}. "
                "Only a PaymentIntent with one of the following statuses may be confirmed: "
                + ", ".join(_CONFIRMABLE)
                + ".",
            )
        if capture_method is not None:
            if capture_method not in ("automatic", "automatic_async", "manual"):
                raise UserError(400, "Bad request")
            intent.capture_method = capture_method
        if payment_method_data is not None:
            if not isinstance(payment_method_data, dict):
                raise UserError(400, "Bad request")
            payment_method = PaymentMethod._api_create(**payment_method_data).id
        if payment_method is not None:
            PaymentMethod._api_retrieve(payment_method)  # 404 if unknown
            intent.payment_method = payment_method
            intent.next_action = None
            if intent.latest_charge is not None and intent.latest_charge.status == "failed":
                # A new attempt (the failed charge stays at /v1/charges).
                intent.latest_charge = None
        elif status == "requires_payment_method":
            raise unexpected_state(
                intent,
                "You cannot confirm this PaymentIntent because it's missing a payment method. "
                "Update the PaymentIntent with a payment method and then confirm it again.",
            )
        elif status == "requires_action":
            return intent  # the action is still to do (Stripe.js shows it)
        intent._confirm(on_failure_now=intent._report_failure)
        return intent

    PaymentIntent._api_confirm = classmethod(_api_confirm)

    # --- capture / cancel: Stripe's state errors and webhooks ----------------------------
    def _create_charge(self: Any, on_failure_now: Any) -> None:
        original_create_charge(self, on_failure_now)
        if self.status == "requires_capture":
            schedule_webhook(r.Event("payment_intent.amount_capturable_updated", self))

    original_create_charge = PaymentIntent._create_charge
    PaymentIntent._create_charge = _create_charge

    original_capture = PaymentIntent._api_capture.__func__

    def _api_capture(cls: Any, id: str, amount_to_capture: Any = None, **kwargs: Any) -> Any:
        kwargs.pop("final_capture", None)
        if isinstance(id, str) and id.startswith("pi_"):
            intent = cls._api_retrieve(id)
            if intent.status != "requires_capture":
                raise unexpected_state(
                    intent,
                    "This PaymentIntent could not be captured because it has a status of "
                    f"{intent.status}. Only a PaymentIntent with one of the following statuses "
                    "may be captured: requires_capture.",
                )
            amount = r.try_convert_to_int(amount_to_capture)
            if amount is not None and not (isinstance(amount, int) and 0 < amount <= intent.amount):
                raise _stripe_error(
                    400,
                    "invalid_request_error",
                    "The amount to capture must be positive and at most the amount capturable "
                    f"({intent.amount}).",
                    code="amount_too_large",
                    param="amount_to_capture",
                )
            result = original_capture(cls, id, amount_to_capture, **kwargs)
            result._amount_captured = amount or result.amount
            return result
        return original_capture(cls, id, amount_to_capture, **kwargs)

    PaymentIntent._api_capture = classmethod(_api_capture)

    original_cancel = PaymentIntent._api_cancel.__func__

    def _api_cancel(
        cls: Any, id: str, cancellation_reason: str | None = None, **kwargs: Any
    ) -> Any:
        if isinstance(id, str) and id.startswith("pi_"):
            intent = cls._api_retrieve(id)
            if intent.status not in _CANCELABLE:
                raise unexpected_state(
                    intent,
                    "You cannot cancel this PaymentIntent because it has a status of "
                    f"{intent.status}. Only a PaymentIntent with one of the following statuses "
                    "may be canceled: " + ", ".join(_CANCELABLE) + ".",
                )
            authorized = intent.status == "requires_capture"
            result = original_cancel(cls, id, **kwargs)
            result.cancellation_reason = cancellation_reason
            if authorized:  # Stripe releases the authorization: the uncaptured charge is refunded
                r.Refund(charge=intent.latest_charge.id)
            schedule_webhook(r.Event("payment_intent.canceled", result))
            return result
        return original_cancel(cls, id, **kwargs)

    PaymentIntent._api_cancel = classmethod(_api_cancel)
    PaymentIntent.cancellation_reason = None

    original_authenticate = PaymentIntent._api_authenticate.__func__

    def _api_authenticate(cls: Any, id: str, **kwargs: Any) -> Any:
        intent = cls._api_retrieve(id) if isinstance(id, str) else None
        method = intent.payment_method if intent is not None else None
        result = original_authenticate(cls, id, **kwargs)
        if result._authentication_failed:
            result._failed_payment_method = failed_method_export(result, method)
            schedule_webhook(r.Event("payment_intent.payment_failed", result))
        return result

    PaymentIntent._api_authenticate = classmethod(_api_authenticate)

    # --- create: parameters Stripe takes that change nothing here -------------------------
    original_create = PaymentIntent._api_create.__func__

    def _api_create(cls: Any, description: str | None = None, **data: Any) -> Any:
        for name in _IGNORED_CREATE_PARAMS:
            data.pop(name, None)
        intent = original_create(cls, **data)
        intent.description = description
        return intent

    PaymentIntent._api_create = classmethod(_api_create)
    PaymentIntent.description = None

    # --- refunds: never more than the charge has left, only of a successful payment ---------
    Refund = r.Refund
    original_refund_init = Refund.__init__

    def refund_init(
        self: Any,
        charge: Any = None,
        payment_intent: Any = None,
        amount: Any = None,
        **kwargs: Any,
    ) -> None:
        charge_obj = None
        if isinstance(payment_intent, str) and payment_intent.startswith("pi_") and not charge:
            intent = PaymentIntent._api_retrieve(payment_intent)
            if intent.status != "succeeded":
                raise _stripe_error(
                    400,
                    "invalid_request_error",
                    f"This PaymentIntent ({intent.id}) does not have a successful charge to "
                    "refund.",
                    code="charge_not_refundable" if intent.latest_charge else "resource_missing",
                )
            charge_obj = intent.latest_charge
        elif isinstance(charge, str) and charge.startswith("ch_"):
            charge_obj = Charge._api_retrieve(charge)
        if charge_obj is not None and charge_obj.status == "succeeded":
            left = charge_obj.amount - charge_obj.amount_refunded
            wanted = r.try_convert_to_int(amount)
            if left <= 0:
                raise _stripe_error(
                    400,
                    "invalid_request_error",
                    f"Charge {charge_obj.id} has already been refunded.",
                    code="charge_already_refunded",
                    charge=charge_obj.id,
                )
            if wanted is None:
                amount = left  # Stripe refunds what is left, not the whole charge again
            elif isinstance(wanted, int) and wanted > left:
                raise _stripe_error(
                    400,
                    "invalid_request_error",
                    f"Refund amount ({wanted}) is greater than unrefunded amount on charge "
                    f"({left}).",
                    code="amount_too_large",
                    param="amount",
                    charge=charge_obj.id,
                )
        original_refund_init(
            self, charge=charge, payment_intent=payment_intent, amount=amount, **kwargs
        )

    Refund.__init__ = refund_init

    # --- list filters ---------------------------------------------------------------------
    def _api_list_all(
        cls: Any,
        url: str,
        customer: str | None = None,
        limit: Any = None,
        starting_after: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if customer is not None and not (isinstance(customer, str) and customer.startswith("cus_")):
            raise UserError(400, "Bad request")
        li = super(PaymentIntent, cls)._api_list_all(
            url, limit=limit, starting_after=starting_after, **kwargs
        )
        if customer is not None:
            li._list = [pi for pi in li._list if pi.customer == customer]
        return li

    PaymentIntent._api_list_all = classmethod(_api_list_all)

    # localstripe.server binds its extra routes to the methods in `extra_apis` when imported:
    # point them at the patched ones first.
    if "localstripe.server" in sys.modules:
        raise RuntimeError("_patch_resources() must run before localstripe.server is imported")
    for i, (method, url, func) in enumerate(r.extra_apis):
        if getattr(func, "__self__", None) is PaymentIntent:
            r.extra_apis[i] = (method, url, getattr(PaymentIntent, func.__name__))


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
    _patch_resources()  # before localstripe.server is imported (it binds routes to methods)
    from aiohttp import web
    from localstripe import server as ls_server
    from localstripe.webhooks import register_webhook

    _isolate_store(path)
    _complete_elements(ls_server.app)
    _add_idempotency(ls_server.app)  # outermost: a replay runs nothing else
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
        ls_server.store.write_to_disk()
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
