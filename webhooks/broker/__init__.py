"""Publishing delivery tasks to Celery, and the kombu Redis transport the workers use."""
