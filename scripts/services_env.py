"""Print `export` lines for the services that answer on this machine (used by `make test`).

PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 are used when reachable and when the
caller did not set DATABASE_URL / REDIS_URL already; otherwise the tests run on SQLite and the
database cache, and the PostgreSQL-only tests are skipped with their reason.
"""

import os
import socket


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


if "DATABASE_URL" not in os.environ and reachable("127.0.0.1", 5432):
    print("export DATABASE_URL=postgres://postgres@127.0.0.1:5432/chargeflow")
if "REDIS_URL" not in os.environ and reachable("127.0.0.1", 6379):
    print("export REDIS_URL=redis://127.0.0.1:6379/15")
