"""The command line, a thin shell over numbamlp.fit and the model files (commands.py), with its
console output (console.py, progress.py) and the install-time precompile step."""
