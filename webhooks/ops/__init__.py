"""Operating the service: metrics, readiness, migrations, the command line and the dev stack."""
