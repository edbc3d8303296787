"""The benchmark suite: ``python -m bench all`` (or ``make bench``).

It provisions its own database, Redis db, receiver and Celery workers on this machine, runs
the scenarios of :mod:`bench.scenarios`, and reports every figure as a ratio to baselines
measured in the same run (this machine's speed drifts too much for anything else). It is not
part of the test command; ``tests/bench`` runs it at tiny size so that it never rots.
"""
