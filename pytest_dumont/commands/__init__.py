"""Subcommands of the ``dumont`` command, one module each (see ``pytest_dumont.cli``)."""
