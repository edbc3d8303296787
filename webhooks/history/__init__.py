"""The execution history: writing attempts, reading them, stats, retention and pagination."""
