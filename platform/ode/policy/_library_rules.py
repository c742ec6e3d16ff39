"""Library rules: over the contracts rather than the resources."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ..contracts import ContractLibrary


@functools.lru_cache(maxsize=1)
def _detectors() -> tuple[Any, ...]:
    """detect-secrets' plugins with their default limits (credentials, keys, high-entropy strings)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class  # heavy: on first use

    plugins: list[Any] = []
    classes: list[Any] = list(get_mapping_from_secret_type_to_class().values())
    for cls in classes:
        try:
            plugins.append(cls())
        except TypeError:  # a plugin that needs arguments of its own is left out
            continue
    return tuple(plugins)


def secret_kinds(key: str, value: Any) -> list[str]:
    """What detect-secrets finds in one ``key: value`` (AWS Access Key, Secret Keyword, ...); empty when clean."""
    if not isinstance(value, str) or not value:
        return []
    line = f'{key}: "{value}"'
    kinds = []
    for plugin in _detectors():
        for secret in plugin.analyze_line(filename="contract.yaml", line=line, line_number=1):
            kinds.append(secret.type)
    return sorted(set(kinds))


def _leaves(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _leaves(v, (*path, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    else:
        yield path, value


def _dotted(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def no_plaintext_secrets(library: ContractLibrary, context: str, env: str,
                         config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Credentials or high-entropy tokens in settings, overrides (``environment`` values included) or event
    schema examples: (setting path, message). The value itself is never repeated."""
    ctx = library.contexts[context]
    places: list[tuple[tuple[str | int, ...], Any]] = [(("settings",), ctx.settings)]
    if env in ctx.overrides:
        places.append((("overrides", env), ctx.overrides[env]))
    for name, iface in ctx.provides.items():
        schema = getattr(iface, "event_schema", None)
        if schema:
            places.append((("provides", name, "schema"), schema))
    for base, tree in places:
        for path, value in _leaves(tree, base):
            if base[-1] == "schema" and not any(p in ("examples", "example", "default", "const", "enum")
                                                for p in path):
                continue
            kinds = secret_kinds(str(path[-1]) if path else "", value)
            if kinds:
                yield _dotted(path), f"{_dotted(path)} holds what looks like a credential ({', '.join(kinds)}): " \
                                     "keep it in a secret interface, not in the contract"


def cross_account_consumption(library: ContractLibrary, context: str, env: str,
                              config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """A consumer in another account than its producer needs the producer environment's ``allow``."""
    del config  # the allow list is the producer's environment's, read below
    ctx = library.contexts[context]
    mine = library.environment(env)
    for i, entry in ctx.numbered_consumes():
        producer = library.contexts.get(entry.context)
        if producer is None:
            continue
        producer_env = _producer_env(library, entry.context, env)
        theirs = library.environment(producer_env)
        if theirs.account == mine.account:
            continue
        setting = theirs.policies.get("cross-account-consumption")
        allowed = [str(a) for a in (setting.model_extra or {}).get("allow", [])] if setting else []
        if mine.account not in allowed:
            yield f"consumes[{i}]", (f"{context} (account {mine.account}) consumes {entry.context}/{entry.interface} "
                                     f"in account {theirs.account}; {producer_env}'s policies do not allow "
                                     f"{mine.account} (cross-account-consumption.allow)")


def _producer_env(library: ContractLibrary, producer: str, env: str) -> str:
    """Where a producer lives for a consumer in ``env``: its ``placement`` if the contract language has one,
    else the same environment."""
    placement = getattr(library.contexts[producer], "placement", None)
    return placement.get(env, env) if isinstance(placement, Mapping) else env


LIBRARY_RULES: dict[str, Callable[[ContractLibrary, str, str, Mapping[str, Any]], Iterator[tuple[str, str]]]] = {
    "no-plaintext-secrets": no_plaintext_secrets,
    "cross-account-consumption": cross_account_consumption,
}


