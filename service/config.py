"""Typed settings from the environment: the machinery every package's ``settings.py`` uses.

A package declares a frozen dataclass whose fields are made with :func:`setting`
(the environment variable, its aliases and a help text). :func:`load` reads the
fields from the environment once, parsing by the field's type: ``str``,
``int``, ``int | None`` (empty or <= 0 means None), ``bool`` and
``tuple[str, ...]`` (comma-separated, lower-cased). Every variable also answers
to a ``RUNNER_``-prefixed alias (the seed guide's names); the unprefixed name
wins. An unparsable value is logged and the default kept, so a foreign
environment (Alga's ``compose.env``) never stops the service.
"""
from __future__ import annotations

import dataclasses
import logging
import types
import typing
from typing import Any, Callable, Iterable, Mapping, TypeVar

log = logging.getLogger("settings")

T = TypeVar("T")


def setting(env: str, default: Any, help: str, *, aliases: tuple[str, ...] = (),
            parse: Callable[[str], Any] | None = None, shown_default: str | None = None,
            default_from: Callable[[Mapping[str, str]], Any] | None = None) -> Any:
    """A settings field read from ``env`` (then ``aliases``).

    :param parse: replaces the parser chosen from the field's type.
    :param shown_default: what the configuration table shows instead of ``default``.
    :param default_from: computes the default from the environment when no variable gives a
        usable value (``default`` is then only the dataclass's own default).
    """
    return dataclasses.field(default=default, metadata={
        "env": env, "aliases": aliases, "help": help, "parse": parse, "shown_default": shown_default,
        "default_from": default_from})


def names(f: dataclasses.Field) -> list[str]:
    """Every variable name a field answers to, in the order they are tried."""
    own = [f.metadata["env"], *f.metadata["aliases"]]
    return own + [f"RUNNER_{n}" for n in own if not n.startswith("RUNNER_")]


def fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if "env" in f.metadata]


def load(cls: type[T], environ: Mapping[str, str], overrides: Mapping[str, Any] = {}) -> T:
    """An instance of ``cls`` from ``environ``; ``overrides`` (by attribute name) win."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in fields(cls):
        if f.name in overrides:
            values[f.name] = overrides[f.name]
            continue
        parse = f.metadata["parse"] or _parser(hints[f.name])
        for name in names(f):
            raw = environ.get(name)
            if raw is None or (not raw.strip() and parse is not _text):
                continue
            try:
                values[f.name] = parse(raw)
            except ValueError as e:
                log.warning("ignoring invalid %s=%r (%s); using the default", name, raw, e)
            break
        if f.name not in values and f.metadata["default_from"] is not None:
            values[f.name] = f.metadata["default_from"](environ)
    return cls(**values)


def markdown_table(classes: Iterable[type]) -> str:
    """The README's configuration table."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for cls in classes:
        for f in fields(cls):
            shown = f.metadata["shown_default"]
            if shown is None:
                shown = ",".join(f.default) or "(empty)" if isinstance(f.default, tuple) else str(f.default)
            variables = " / ".join(f"`{n}`" for n in (f.metadata["env"], *f.metadata["aliases"]))
            rows.append(f"| {variables} | `{shown}` | {f.metadata['help']} |")
    return "\n".join(rows)


def _text(raw: str) -> str:
    return raw.strip()


def _int(raw: str) -> int:
    return int(raw.strip())


def _positive_or_none(raw: str) -> int | None:
    value = int(raw.strip())
    return value if value > 0 else None


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {raw!r}")


def one_of(*choices: str) -> Callable[[str], str]:
    """A parser for a setting that takes one of ``choices`` (case-insensitive)."""

    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"not one of {', '.join(choices)}: {raw!r}")
        return value

    return parse


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(p.strip().lower() for p in raw.split(",") if p.strip())


def _parser(hint: Any) -> Callable[[str], Any]:
    if hint is str:
        return _text
    if hint is bool:
        return _bool
    if hint is int:
        return _int
    if isinstance(hint, types.UnionType) and set(hint.__args__) == {int, type(None)}:
        return _positive_or_none
    if typing.get_origin(hint) is tuple:
        return _csv
    raise TypeError(f"no parser for settings type {hint!r}")
