"""CLI options generated from the pydantic configs: one flag per config field, its help the field's description.

A command lists the config models whose fields become flags (a ``Section``: the root config, a
nested model such as ``train``, each registered method's options); ``add_options`` adds one
argparse flag per field and returns the table that ``apply_options`` reads back into the nested
settings the config validates. A flag is the field's name with dashes (``--batch-size``); a nested
model that is not a section of its own prefixes its fields with its name (``--recovery-epochs``);
a name taken by another field gets its section's name in front (``--train-max-grad-norm``), and
``names`` keeps today's flags where they differ from the field (``--patience``). Sections that
share a key (the options of several compression methods, the data of several tasks) share its flag.

Only the flags a user gives reach the settings, so a ``--config`` file or the model's own default
fills the rest; the help shows that default. Help text passes through ``%`` formatting in argparse:
it is escaped here, once, so a description is written as it reads ("1% FPR").
"""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import dataclass, field

from pydantic import BaseModel

from fmkit.cli.common import comma_list, set_nested

NULL_WORDS = ("none", "null")  # spell None for an optional field whose default is not None
METAVARS = {int: "N", float: "X", str: "TEXT"}
DEST_PREFIX = "config:"  # keeps generated destinations apart from the command's own (--out, --json)


@dataclass(frozen=True)
class Section:
    """A config model whose fields become flags, found at ``key`` (dotted) in the command's settings."""

    key: str
    model: type[BaseModel]
    title: str  # the argument group in --help
    prefix: str = ""  # before every flag name ("lora-" for the LoRA options)
    defaults: BaseModel | None = None  # the values --help shows (a parent's default_factory), else the fields'
    owner: str = ""  # whose options these are (a method name), named in the help of a shared flag
    skip: tuple[str, ...] = ()  # fields the command handles itself (the method name, a positional)


@dataclass
class Option:
    """One generated flag and the dotted config key it sets; ``owners`` are the sections that have the field."""

    flag: str
    key: str
    owners: list[str] = field(default_factory=list)

    @property
    def dest(self) -> str:
        return DEST_PREFIX + self.key


@dataclass
class _Field:
    key: str
    name: str
    section: Section
    declared: str  # the key of the declared section it was found in (a nested model's parent section)
    annotation: object
    description: str
    default: object  # _REQUIRED when the field has none


_REQUIRED = object()


def sections_of(model: type[BaseModel], title: str, *, titles: dict[str, str] | None = None, owner: str = "",
                skip: tuple[str, ...] = ()) -> list[Section]:
    """A config and each nested model in it as sections of their own: their flags carry no prefix
    (``--epochs`` for ``train.epochs``), as fmkit's commands have always spelled them."""
    titles = titles or {}
    sections = [Section("", model, title, owner=owner, skip=skip)]
    for name, info in model.model_fields.items():
        nested = _nested_model(info.annotation)
        if nested is None or name in skip:
            continue
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        sections.append(Section(name, nested, titles.get(name, name), owner=owner,
                                defaults=default if isinstance(default, BaseModel) else None))
    return sections


def add_options(parser: argparse.ArgumentParser, sections: list[Section], *, names: dict[str, str] | None = None,
                arguments: dict[str, dict] | None = None) -> dict[str, Option]:
    """Add a flag for every field of ``sections``; returns {config key: Option}.

    ``names``: config key -> today's flag where it differs from the generated one. ``arguments``:
    config key -> argparse keywords that replace the generated ones (``nargs="+"`` for a list of paths).
    """
    names, arguments = names or {}, arguments or {}
    declared = {section.key for section in sections}
    fields: dict[str, list[_Field]] = {}
    owners_of: dict[str, set[str]] = {}  # declared section key -> every owner that has a section there
    for section in sections:
        owners_of.setdefault(section.key, set()).add(section.owner)
        for item in _fields(section, declared, section.key):
            fields.setdefault(item.key, []).append(item)
    taken = {flag: key for key, flag in names.items()}
    options: dict[str, Option] = {}
    groups: dict[str, argparse._ArgumentGroup] = {}
    for key, entries in fields.items():
        first = entries[0]
        flag = names.get(key) or _free_flag(first, key, taken)
        taken[flag] = key
        owners = [entry.section.owner for entry in entries if entry.section.owner]
        option = Option(flag, key, owners)
        title = first.section.title
        group = groups.get(title) or groups.setdefault(title, parser.add_argument_group(title))
        named = owners if set(owners) != owners_of[first.declared] - {""} else []  # fields all of them have: no names
        keywords = _argument(entries, flag, named)
        keywords.update(arguments.get(key, {}))
        group.add_argument(flag, dest=option.dest, default=argparse.SUPPRESS, **keywords)
        options[key] = option
    return options


def apply_options(settings: dict, args: argparse.Namespace, options: dict[str, Option]) -> list[Option]:
    """Write the values of the flags the user gave into ``settings``; returns those options."""
    given = [option for option in options.values() if hasattr(args, option.dest)]
    for option in given:
        set_nested(settings, option.key, getattr(args, option.dest))
    return given


def refuse_other_methods(given: list[Option], method: str, registry) -> None:
    """A method's option given with another registered method is bad input naming the methods that have it."""
    from fmkit.errors import BadInputError

    for option in given:
        if option.key.startswith("method.") and option.owners and method in registry and method not in option.owners:
            raise BadInputError(f"{option.flag} applies to --method {' or '.join(option.owners)}, not to --method "
                                f"{method}; drop it or pick one of those methods")


def _fields(section: Section, declared: set[str], parent: str):
    """The flag-able fields of a section; nested models that are not sections of their own are walked into."""
    for name, info in section.model.model_fields.items():
        key = f"{section.key}.{name}" if section.key else name
        if name in section.skip:
            continue
        if section.defaults is not None:
            default = getattr(section.defaults, name)
        elif info.is_required():
            default = _REQUIRED
        else:
            default = info.get_default(call_default_factory=True)
        nested = _nested_model(info.annotation)
        if nested is not None and _optional(info.annotation)[1] and isinstance(default, BaseModel):
            yield _Field(key, name, section, parent, type(None), f"no {name.replace('_', ' ')} at all", default)
        if key in declared:
            continue
        if nested is not None:
            yield from _fields(Section(key, nested, section.title, prefix=f"{section.prefix}{_dashed(name)}-",
                                       defaults=default if isinstance(default, BaseModel) else None,
                                       owner=section.owner), declared, parent)
            continue
        yield _Field(key, name, section, parent, info.annotation, info.description or "", default)


def _free_flag(item: _Field, key: str, taken: dict[str, str]) -> str:
    """The field's own flag, or its section's name in front when another field has that one."""
    candidates = [f"--{item.section.prefix}{_dashed(item.name)}"]
    if item.section.key:
        candidates.append(f"--{_dashed(item.section.key.split('.')[-1])}-{_dashed(item.name)}")
    if item.annotation is type(None):
        candidates = [f"--no-{item.section.prefix}{_dashed(item.name)}"]
    for flag in candidates:
        if taken.get(flag, key) == key:
            return flag
    raise ValueError(f"{candidates[-1]} for {key} is also {taken[candidates[-1]]}'s flag; name one in the command's table")


def _argument(entries: list[_Field], flag: str, owners: list[str]) -> dict:
    """argparse keywords (type, choices, nargs or action, metavar, help) of one field, merged over its sections."""
    first = entries[0]
    inner, optional = _optional(first.annotation)
    default = first.default
    nullable = optional and default is not None and default is not _REQUIRED
    keywords: dict = {"help": _help(entries, owners)}
    if first.annotation is type(None):  # --no-recovery: the whole optional model off
        keywords.update(action="store_const", const=None)
    elif inner is bool:
        keywords["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(inner) is typing.Literal:
        values: list = []
        for entry in entries:
            entry_inner = _optional(entry.annotation)[0]
            if typing.get_origin(entry_inner) is not typing.Literal:
                values = []  # one section takes any value: its config validates it
                break
            values += [value for value in typing.get_args(entry_inner) if value not in values]
        kind = type(typing.get_args(inner)[0])
        keywords["type"] = _nullable(kind) if nullable else kind
        if values:
            keywords["choices"] = values + ([None] if nullable else [])
    elif typing.get_origin(inner) in (list, tuple, set):
        item = (typing.get_args(inner) or (str,))[0]
        keywords.update(type=_comma_list_of(item if item in (int, float, str) else str), metavar="A,B,...")
    elif inner in (int, float, str):
        keywords.update(type=_nullable(inner) if nullable and inner is not str else inner)
    else:  # anything else (a mapping, a union of models) is written as YAML, as in a --config file
        keywords.update(type=_yaml_value, metavar="YAML")
    if "metavar" not in keywords and "choices" not in keywords and "action" not in keywords:
        keywords["metavar"] = METAVARS.get(inner, "VALUE")
    return keywords


def _help(entries: list[_Field], owners: list[str]) -> str:
    described = [(entry.section.owner, entry.description) for entry in entries if entry.description]
    if len({description for _, description in described}) > 1:  # each owner says it its way: name who says what
        text = "; ".join(f"{owner}: {description}" if owner else description for owner, description in described)
    else:
        text = described[0][1] if described else ""
        if owners:
            text = f"{', '.join(owners)}: {text}" if text else ", ".join(owners)
    defaults = [(entry.section.owner, entry.default) for entry in entries if _shown(entry)]
    moved = any(entry.section.defaults is not None for entry in entries)  # a parent's default, not the field's
    if defaults and (moved or "default" not in text.lower()):
        if len({repr(value) for _, value in defaults}) == 1:
            text += f" (default: {_format(defaults[0][1])})"
        else:
            text += " (default: " + ", ".join(f"{owner} {_format(value)}" for owner, value in defaults) + ")"
    return text.replace("%", "%%")  # argparse %-formats help; descriptions are written as they read


def _shown(entry: _Field) -> bool:
    value = entry.default
    return value is not _REQUIRED and value is not None and value != [] and not isinstance(value, BaseModel)


def _format(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def _dashed(name: str) -> str:
    return name.replace("_", "-")


def _optional(annotation) -> tuple[object, bool]:
    """(X, True) for ``X | None``; (annotation, False) otherwise."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        arguments = [argument for argument in typing.get_args(annotation) if argument is not type(None)]
        if len(arguments) == 1:
            return arguments[0], len(arguments) < len(typing.get_args(annotation))
    return annotation, False


def _nested_model(annotation) -> type[BaseModel] | None:
    inner = _optional(annotation)[0]
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) and inner is not BaseModel else None


def _nullable(kind):
    def convert(text: str):
        return None if text.lower() in NULL_WORDS else kind(text)

    convert.__name__ = kind.__name__  # argparse names the type in "invalid int value"
    return convert


def _comma_list_of(kind):
    def convert(text: str):
        return [kind(part) for part in comma_list(text)]

    convert.__name__ = f"comma-separated {kind.__name__}"
    return convert


def _yaml_value(text: str):
    import yaml

    return yaml.safe_load(text)
