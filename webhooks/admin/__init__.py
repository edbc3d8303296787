"""Managing tenants, endpoints and API tokens."""
