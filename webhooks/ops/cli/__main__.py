"""``python -m webhooks.ops.cli``: the ``webhooks`` command without its console script."""

from webhooks.ops.cli import main

main()
