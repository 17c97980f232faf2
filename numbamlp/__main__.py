"""``python -m numbamlp`` is the ``numbamlp`` command."""

from numbamlp.cli.commands import main

main(prog_name="numbamlp")
