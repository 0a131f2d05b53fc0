"""Errors for input the workbench refuses as a whole.

Each message is one line: what is wrong, where, and how to fix it. The CLI prints
it to stderr and exits with status 2; nothing partial has been written.
"""


class InputError(ValueError):
    """Bad input (file, mapping, parameter): refused before anything is written."""


class IngestError(InputError):
    """Input that cannot be ingested at all."""


class SimulationError(InputError):
    """A scenario, parameter or run request that cannot be simulated."""
