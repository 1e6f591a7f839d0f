"""The error types of `nas`: where nas code imports them from (`from nas.common.errors import UserError`).

`UserError` is defined in `search_space.errors` (the base package every other package may import) and
re-exported here and as `nas.UserError`; `ConfigError` is a `UserError` naming a config field's path.
"""

from search_space.errors import UserError


class ConfigError(UserError):
    """A mistake in a config file or section; the message starts with the field's path."""


__all__ = ["ConfigError", "UserError"]
