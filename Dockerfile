# One image for every ChargeFlow process (web, worker, relay, beat) and the local stand-ins.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 CHARGEFLOW_VAR_DIR=/app/var
WORKDIR /app

COPY requirements.txt requirements-dev.txt ./
# requirements-dev.txt also brings the local stand-ins (moto, localstripe); production images can
# install requirements.txt alone.
ARG REQUIREMENTS=requirements-dev.txt
RUN pip install -r "$REQUIREMENTS"

COPY . .
# Collected as production serves them (hashed names and a manifest, DEBUG off); the key and
# secrets below exist only for this build step (with DEBUG off the settings refuse to load
# without them; docs/security.md).
RUN DEBUG=false SECRET_KEY=collectstatic-only-not-a-runtime-secret-000 ALLOWED_HOSTS=build \
    STRIPE_SECRET_KEY=build-only STRIPE_PUBLISHABLE_KEY=build-only STRIPE_WEBHOOK_SECRET=build-only \
    SHIPPING_PARTNER_API_KEY=build-only ANYMAIL_WEBHOOK_SECRET=build-only \
    python manage.py collectstatic --noinput \
    && useradd --create-home --uid 1000 chargeflow && mkdir -p var && chown -R chargeflow var
USER chargeflow

EXPOSE 8000
CMD ["gunicorn", "chargeflow.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
