"""The one exception type for problems a user can fix (bad file, bad flag).

The CLIs turn it into a single line on stderr and a non-zero exit; any other
exception is a bug and is allowed to show its traceback.
"""


class SerEdgeError(Exception):
    """A user-facing error whose message is one self-contained line."""

    def __str__(self) -> str:
        # A path or a library message may hold line breaks; the CLIs promise one line.
        return super().__str__().replace("\r", " ").replace("\n", " ")
