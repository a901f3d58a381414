"""fumewatch: the composition root.

The command line (``fumewatch.cli``), the application settings (``fumewatch.settings``), the wiring of the
services and the demo live here. Imports point one way: ``fumewatch`` -> ``alerts``, ``dashboards`` ->
``ingest`` (checked by the import-linter contracts in pyproject.toml).
"""
