"""The ``kdistill`` command line."""
