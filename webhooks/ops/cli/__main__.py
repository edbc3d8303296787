"""``python -m webhooks.ops.cli``: the command line without the console script."""

from webhooks.ops.cli import main

main()
