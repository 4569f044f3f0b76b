"""`python -m podbrief_cli ...`: the same as the `podbrief` command."""

from podbrief_cli.cli import main

main()
