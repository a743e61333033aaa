"""The floor of the stack (`make bench`): a bare Django view on the same gunicorn configuration
that parses a JSON body and inserts one row in one transaction on the same PostgreSQL.

    gunicorn bench.bareapp:application ...   (DATABASE_URL from the environment)
"""

from __future__ import annotations

import json
import os

import dj_database_url
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY=os.environ.get("SECRET_KEY", "bench-bare-view-not-a-secret-0123456789"),
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        DATABASES={"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)},
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )

import django

django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

TABLE_SQL = "CREATE TABLE IF NOT EXISTS bench_bare (id bigserial PRIMARY KEY, body jsonb NOT NULL)"


@csrf_exempt
def insert(request):
    body = json.loads(request.body)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_bare (body) VALUES (%s) RETURNING id", [json.dumps(body)])
        (row_id,) = cursor.fetchone()
    return JsonResponse({"id": row_id}, status=201)


urlpatterns = [path("insert/", insert)]
application = get_wsgi_application()
