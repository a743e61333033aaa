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
# Collected as production serves them (hashed names and a manifest, DEBUG off); the key below
# exists only for this build step.
RUN DEBUG=false SECRET_KEY=collectstatic-only-not-a-runtime-secret-000 ALLOWED_HOSTS=build \
    python manage.py collectstatic --noinput \
    && useradd --create-home --uid 1000 chargeflow && mkdir -p var && chown -R chargeflow var
USER chargeflow

EXPOSE 8000
CMD ["gunicorn", "chargeflow.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
