"""Loaded by pytest before Django's settings (`-p chargeflow.devenv` in pyproject.toml): the test
suite runs on the local stand-ins, so DEBUG defaults to true there, as `make run` sets it.
Settings default DEBUG to false everywhere else (docs/security.md). The relay, worker and web
processes the tests start inherit it."""

import os

os.environ.setdefault("DEBUG", "true")
