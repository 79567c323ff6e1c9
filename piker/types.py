"""The one struct base every piker message and record derives from.

msgspec structs are fast to build, validate and (de)serialize; this base
adds the few conveniences the rest of the code leans on: a plain-dict view,
a *pure* copy-with-changes, and a readable multi-line repr for logs.
"""
from __future__ import annotations

from typing import Any, Self

import msgspec


class Struct(msgspec.Struct):
    """msgspec struct base with `to_dict()`, `copy(update=)` and `pformat()`."""

    def to_dict(self) -> dict[str, Any]:
        """Return a shallow field -> value dict (nested structs stay structs)."""
        return {f: getattr(self, f) for f in self.__struct_fields__}

    def to_builtins(self) -> Any:
        """Return a fully builtin (msgpack/json-ready) representation."""
        return msgspec.to_builtins(self)

    def copy(self, update: dict[str, Any] | None = None) -> Self:
        """Return a deep copy with `update` applied; `self` is never mutated.

        The merged data is re-validated (and `__post_init__` re-run), so an
        update of the wrong type raises `msgspec.ValidationError`.
        """
        data = self.to_builtins()
        if update:
            unknown = set(update) - set(self.__struct_fields__)
            if unknown:
                raise ValueError(
                    f'{type(self).__name__} has no field(s) {sorted(unknown)}'
                )
            data.update(msgspec.to_builtins(update))
        return msgspec.convert(data, type(self))

    def pformat(self, indent: int = 2) -> str:
        """A readable multi-line repr, one field per line, nested indented."""
        pad = ' ' * indent
        lines = [f'{type(self).__name__}(']
        for f in self.__struct_fields__:
            val = getattr(self, f)
            if isinstance(val, Struct):
                sub = val.pformat(indent).replace('\n', '\n' + pad)
                lines.append(f'{pad}{f}={sub},')
            else:
                lines.append(f'{pad}{f}={val!r},')
        lines.append(')')
        return '\n'.join(lines)
