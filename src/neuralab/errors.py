"""The one exception for input a user can fix."""


class NeuralabError(ValueError):
    """Bad input: a file, field or option that the user can correct.

    The message is one line that names the culprit and says what to do. The CLI
    prints it without a traceback and exits with status 2.
    """
