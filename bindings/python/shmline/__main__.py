"""`python -m shmline ARGS...` runs the bundled `shmline` command (see `shmline._cli`)."""

from ._cli import main

main()
