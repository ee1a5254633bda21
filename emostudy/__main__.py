"""`python -m emostudy` runs the `emostudy` command."""

from emostudy.cli import main

main()
