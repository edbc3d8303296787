"""What every other package stands on: configuration, the database, ids, clocks, errors,
encryption and logging."""
