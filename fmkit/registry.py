"""A small name -> component registry.

Methods register themselves next to their code (``@FINETUNE_METHODS.register("lora")``);
stages dispatch through the registry, so a new method is a new file, never a new branch
in a central if/elif. Recipes may only name registered components: no import paths.
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from fmkit.errors import BadInputError

T = TypeVar("T")


def did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(item: T) -> T:
            if name in self._items and self._items[name] is not item:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            return item

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise BadInputError(
                f"unknown {self.kind} {name!r}; registered: {', '.join(sorted(self._items))}."
                + did_you_mean(name, self._items)
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))


def parse_registered_options(value, registry: "Registry", what: str = "method"):
    """Validate ``name`` or ``{name: ..., **options}`` against the options model a registry holds.

    Used by config fields whose value picks a registered component (fine-tuning and compression
    methods); the component's own options model validates the rest.
    """
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or "name" not in value:
        raise ValueError(f"{what} must be a name ({', '.join(registry)}) or a mapping with 'name'")
    if value["name"] not in registry:
        raise ValueError(f"unknown {what} {value['name']!r}; registered: {', '.join(registry)}."
                         + did_you_mean(value["name"], registry))
    return registry.get(value["name"]).options.model_validate(value)
