"""fumewatch dashboards: Grafana dashboards and provisioning as code."""
