"""``python -m numbamlp`` is the ``numbamlp`` command."""

from numbamlp.cli import main

main(prog_name="numbamlp")
