"""The operator's desk: one page per order, the dashboard, the dead-letter viewer, /metrics.

The one module (with chargeflow.urls) allowed to import every domain app: it READS each app
through its selectors and ACTS through its services, the same ones the pipeline calls, never
through another app's models (the import-linter contracts in pyproject.toml; docs/architecture.md
says why)."""
