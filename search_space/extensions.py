"""One small name -> object registry, filled by a decorator where each entry is defined.

Every package may import `search_space`, so latency sources, profilers, block kinds, controllers
and data sources all register the same way and reject an unknown name with the same message.
"""

from search_space.errors import UserError


class Registry:
    """Named entries in registration order; aliases resolve to the same entry but are not listed."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict = {}
        self._aliases: dict = {}

    def register(self, name: str, *aliases: str):
        """Decorator: `@REG.register("name", "alias")` registers the object and returns it unchanged."""

        def decorate(obj):
            for key in (name, *aliases):
                if key in self._entries or key in self._aliases:
                    raise ValueError(f"{self.what} {key!r} is registered twice")
            self._entries[name] = obj
            for alias in aliases:
                self._aliases[alias] = name
            return obj

        return decorate

    def get(self, name: str):
        key = self._aliases.get(name, name) if isinstance(name, str) else None  # YAML may give a list here
        if key not in self._entries:
            raise UserError(f"unknown {self.what} {name!r} (known: {', '.join(self.names())})")
        return self._entries[key]

    def names(self) -> tuple:
        return tuple(self._entries)

    def items(self):
        return self._entries.items()

    def __contains__(self, name) -> bool:
        return name in self._entries or name in self._aliases

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self.names())})"
