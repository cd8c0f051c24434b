"""The one exception type kdistill raises for problems a user can fix."""


class KDistillError(Exception):
    """A problem with the user's input: the message names it and says how to fix it.

    The CLI prints the message as a single line and exits with status 2, never a traceback.
    """
