"""Taking events in: ``enqueue_event``, event names and the event-type catalogue."""
