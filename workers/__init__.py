"""Celery workers of the dispatcher: ``celery -A workers worker``, ``beat``, ``flower``."""

from workers import tasks
from workers.app import app

__all__ = ["app", "tasks"]
