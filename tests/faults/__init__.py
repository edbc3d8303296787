"""Fault tests: real workers, brokers, databases and receivers broken on purpose."""
