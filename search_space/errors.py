"""The one exception type for mistakes a user can make (bad YAML, names, paths, files).

Every part raises `UserError` (or a subclass) for input it rejects; the CLI turns it into one line
on stderr and exit status 2. Anything else escaping is an internal bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input; the message says what and, where useful, what to do."""


class SpecError(UserError):
    """An architecture (block, model spec) that is not valid."""
