"""The one exception type kdistill raises for problems a user can fix."""


class KDistillError(Exception):
    """A problem with the user's input: the message names it and says how to fix it.

    The CLI prints the message as a single line and exits with status 2, never a traceback.
    """


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM, as schedulers and container runtimes send it).

    A training loop saves a checkpoint at the next step boundary before raising it, so
    ``--resume`` continues where it stopped; the CLI exits with status 143 (128 + SIGTERM).
    """
