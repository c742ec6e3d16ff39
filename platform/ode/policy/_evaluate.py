"""Levels, configuration and waivers applied to findings; violations located in their contracts; reports as
text, JSON and SARIF 2.1.0."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from ..clock import Clock, utcnow
from ..contracts import ContractLibrary
from ..contracts.policies import RULES, Level, RuleInfo
from ..engines.protocol import EngineError
from ..sarif import check_log
from ._environment import environment_findings
from ._library_rules import LIBRARY_RULES
from ._model import Bounds, EnvView, Res, provider_default_tags
from ._stack_rules import Finding, bounds_for, resource_findings


@dataclass
class Violation:
    """One finding with its level and waiver applied, located in the contract that owns it."""

    rule: str
    level: str
    stack: str
    context: str
    resource: str | None
    type: str | None
    message: str
    waived: bool
    file: str
    line: int | None

    @property
    def blocking(self) -> bool:
        return self.level == "mandatory" and not self.waived

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "level": self.level, "stack": self.stack, "context": self.context,
                "resource": self.resource, "type": self.type, "message": self.message, "waived": self.waived,
                "file": self.file, "line": self.line}


def _line_in(path: Path, loc: Sequence[str | int]) -> int | None:
    """The line of ``loc`` (or of its nearest existing parent) in a YAML file."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError):
        return None
    line = 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                return line
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


#: The contract setting that decides what a rule looks at, where there is one.
_RULE_SETTINGS = {"log-retention": "log_retention_days", "alarms": "alarm_topic_arn"}

#: Resource inputs that come straight from a contract setting (a value out of AWS's limits is located there).
_INPUT_SETTINGS = {"runtime": "runtime", "memorySize": "memory_mb", "timeout": "timeout_s",
                   "reservedConcurrentExecutions": "reserved_concurrency", "retentionInDays": "log_retention_days",
                   "batchSize": "batch_size", "desiredCount": "desired_count", "environment": "environment",
                   "maximumBatchingWindowInSeconds": "batching_window_s", "handler": "handler",
                   "architectures": "architecture"}


def _setting_of(rule: str, message: str) -> str | None:
    """The contract setting a finding comes from, where the rule or the input it names says so."""
    if rule == "aws-value-constraints":
        return next((setting for name, setting in _INPUT_SETTINGS.items()
                     if any(f": {name}{end}" in message for end in (" ", ".", ":", "["))), None)
    return _RULE_SETTINGS.get(rule)


class Policies:
    """The rules as one environment sets them, applied to one library's contexts with their waivers.

    ``today`` comes from ``clock`` (waivers expire at the end of their ``expires`` day, UTC).
    """

    def __init__(self, library: ContractLibrary, env: str, *, clock: Clock = utcnow):
        self.library = library
        self.env = env
        self.place = library.environment(env)
        self.today: date = clock().date()
        self.settings: dict[str, tuple[Level, dict[str, Any]]] = {}
        for rule, info in RULES.items():
            self.settings[rule] = self._setting(info)
        self._lines: dict[tuple[str, tuple[str | int, ...]], int | None] = {}
        # What rules read beside their configuration: today's date from ode's clock (runtimes closed to new
        # functions) and the account's quotas from environments.yaml.
        quotas = getattr(self.place, "quotas", None)
        self.evaluated: dict[str, tuple[Level, dict[str, Any]]] = {
            rule: (level, {**cfg, "today": self.today,
                           **({"account_concurrency": quotas.lambda_concurrency} if quotas is not None else {})})
            for rule, (level, cfg) in self.settings.items()}

    def disabled(self) -> list[str]:
        """The ids of the rules this environment disables, in the rules' order."""
        return [rule for rule, (level, _) in self.settings.items() if level == "disabled"]

    def _setting(self, info: RuleInfo) -> tuple[Level, dict[str, Any]]:
        given = self.place.policies.get(info.id)
        if given is None:
            return info.level, dict(info.config)
        return given.level, {**info.config, **(given.model_extra or {})}

    def pack_config(self, context: str, bounds: Bounds | None = None) -> dict[str, Any]:
        """The CrossGuard policy-pack configuration of one stack: each rule's level (a rule the context waives,
        unexpired, is advisory there) and configuration, and the bounds of iam-least-privilege."""
        waived = {w.rule for w in self._waivers(context) if w.expires >= self.today}
        config: dict[str, Any] = {}
        for rule, (level, cfg) in self.settings.items():
            effective = "advisory" if level == "mandatory" and rule in waived else level
            config[rule] = {"enforcementLevel": effective, **cfg}
        if bounds is not None:
            config["iam-least-privilege"]["bounds"] = bounds.to_dict()
            config["contract-reachable"]["bounds"] = bounds.to_dict()
        # The stack view of ingress-reachable: whether this context asks to be public.
        ctx = self.library.contexts[context]
        config["ingress-reachable"].update(context=context, component=ctx.component,
                                           public=bool(ctx.settings_for(self.env).get("public")))
        return config

    def _waivers(self, context: str) -> list[Any]:
        return list(getattr(self.library.contexts[context], "waivers", []) or [])

    def _locate(self, context: str, setting: str | None) -> tuple[str, int | None]:
        path = self.library.files.get(context)
        label = self.library.label(context)
        if path is None:
            return label, None
        ctx = self.library.contexts[context]
        loc: tuple[str | int, ...] = ("context",)
        if setting:
            parts: list[str | int] = [int(p) if p.isdigit() else p
                                      for p in re.findall(r"[^.\[\]]+", setting)]
            if parts and parts[0] in ("settings", "overrides", "provides", "consumes"):
                loc = tuple(parts)
            elif setting in ctx.overrides.get(self.env, {}):
                loc = ("overrides", self.env, setting)
            elif setting in ctx.settings:
                loc = ("settings", setting)
        key = (context, loc)
        if key not in self._lines:
            self._lines[key] = _line_in(path, loc)
        return label, self._lines[key]

    def apply(self, stack: str, context: str, findings: Iterable[Finding]) -> list[Violation]:
        """Findings as violations: levels of this environment, the context's waivers, file and line."""
        waivers = {w.rule: w for w in self._waivers(context)}
        out = []
        for rule, res, message, setting in findings:
            level = self.settings[rule][0]
            if level == "disabled":
                continue
            waiver = waivers.get(rule)
            waived = waiver is not None and waiver.expires >= self.today
            if waiver is not None and not waived:
                message += f" (its waiver expired on {waiver.expires.isoformat()})"
            file, line = self._locate(context, setting or _setting_of(rule, message))
            out.append(Violation(rule, level, stack, context, res.name if res else None, res.type if res else None,
                                 message, waived, file, line))
        return out

    def library_findings(self, context: str) -> list[Finding]:
        """The library rules over one context's contract."""
        found: list[Finding] = []
        for rule, fn in LIBRARY_RULES.items():
            level, config = self.settings[rule]
            if level != "disabled":
                found.extend((rule, None, msg, setting) for setting, msg in fn(self.library, context, self.env,
                                                                                 config))
        return found

    def check_stack(self, context: str, resources: Sequence[Res] | None,
                    upstream: Mapping[str, Mapping[str, Any]] | None = None, *, stack: str | None = None,
                    library_rules: bool = True) -> list[Violation]:
        """Every rule over one stack: library rules over its contract, resource and stack rules over its
        resources (None: not known, only the library rules run)."""
        findings = self.library_findings(context) if library_rules else []
        if resources is not None:
            bounds = bounds_for(self.library, context, upstream or {})
            findings.extend(resource_findings(resources, self.evaluated, bounds))
        return self.apply(stack or f"{self.env}.{context}", context, findings)

    def check_environment(self, view: EnvView, contexts: Iterable[str] | None = None,
                          stacks: Mapping[str, str] | None = None) -> list[Violation]:
        """The environment rules over ``view`` (every previewed stack of the environment), as violations of the
        contexts they are reported on (only ``contexts`` where given; ``stacks`` names their stacks)."""
        wanted = set(contexts) if contexts is not None else None
        by_context: dict[str, list[Finding]] = {}
        for rule, (context, res, message, setting) in environment_findings(view, self.evaluated):
            if context not in self.library.contexts or (wanted is not None and context not in wanted):
                continue
            by_context.setdefault(context, []).append((rule, res, message, setting))
        out: list[Violation] = []
        for context, found in by_context.items():
            stack = (stacks or {}).get(context) or f"{self.env}.{context}"
            out.extend(self.apply(stack, context, found))
        return out


def resources_from(changes: Iterable[Any]) -> list[Res]:
    """Rule views of an engine's recorded resources (``ResourceChange``/``RecordedResource``): dependencies
    are read where the engine recorded them, and each resource gets its stack provider's default tags."""
    items = [c for c in changes if getattr(c, "op", "same") != "delete"]
    default_tags: dict[str, str] = {}
    for c in items:
        if c.type == "pulumi:providers:aws":
            default_tags = provider_default_tags(c.inputs)
    # Rules judge the real values (a policy naming a secret output's ARN is still a policy): the unmasked inputs
    # where the engine kept them in memory, never anything written.
    return [Res(c.type, c.name, getattr(c, "checked_inputs", None) or c.inputs, c.parent,
                getattr(c, "dependencies", None), default_tags, getattr(c, "outputs", None) or {}) for c in items
            if not c.type.startswith("pulumi:providers:")]


# ---------------------------------------------------------------------------------------------------------------
# Reports


class PolicyViolationError(EngineError):
    """A stack was kept from its engine: it breaks mandatory rules that no current waiver covers."""

    def __init__(self, stack: str, violations: Sequence[Violation]):
        self.violations = list(violations)
        lines = [f"{v.rule}: {v.message} ({v.file}{f':{v.line}' if v.line else ''})" for v in violations]
        more = f" (and {len(lines) - 5} more)" if len(lines) > 5 else ""
        super().__init__(stack, "blocked by policy: " + "; ".join(lines[:5]) + more)


@dataclass
class Report:
    """The violations of one environment's check."""

    env: str
    violations: list[Violation] = field(default_factory=list)
    #: Stacks that could not be checked (their program failed), with why.
    errors: dict[str, str] = field(default_factory=dict)
    #: The rules the environment disables: no finding of theirs is reported, and the summary says so.
    disabled: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No mandatory violation that a current waiver does not cover, and every stack checked."""
        return not self.errors and not any(v.blocking for v in self.violations)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"env": self.env, "ok": self.ok, "violations": [v.to_dict() for v in self.violations]}
        if self.errors:
            data["errors"] = dict(self.errors)
        if self.disabled:
            data["disabled"] = list(self.disabled)
        return data

    def to_text(self) -> str:
        lines = []
        for v in self.violations:
            where = f"{v.file}:{v.line}" if v.line else v.file
            mark = "waived" if v.waived else v.level
            lines.append(f"{where}: {mark}: {v.rule}: {v.stack}: {v.message}")
        for stack, error in self.errors.items():
            lines.append(f"{stack}: not checked: {error}")
        blocking = sum(1 for v in self.violations if v.blocking)
        lines.append(f"check {self.env}: {'ok' if self.ok else 'failed'}: {blocking} mandatory, "
                     f"{sum(1 for v in self.violations if v.level == 'advisory' and not v.waived)} advisory, "
                     f"{sum(1 for v in self.violations if v.waived)} waived"
                     f"{'; disabled: ' + ', '.join(self.disabled) if self.disabled else ''}")
        return "\n".join(lines)

    def to_sarif(self, tool_version: str = "0.1.0") -> dict[str, Any]:
        """SARIF 2.1.0 as GitHub code scanning takes it (:func:`ode.sarif.check_log` over this package's rules)."""
        return check_log(self, RULES, tool_version)
