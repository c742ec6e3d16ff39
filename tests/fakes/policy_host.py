"""How the stand-in `pulumi` runs a local policy pack: the way the CLI starts and talks to one.

The CLI's path, read from the Pulumi repository (pulumi/pulumi):

- ``pkg/resource/plugin/analyzer_plugin.go`` (``NewPolicyAnalyzer``): a pack folder holds ``PulumiPolicy.yaml``; its
  runtime's language plugin runs it, with the engine's address as argument, and the CLI dials the port the plugin
  prints; a ``Handshake`` the pack does not implement is skipped; ``ConfigureStack`` tells it the stack.
- ``sdk/python/cmd/pulumi-language-python/main.go`` (``RunPlugin``): a Python pack runs as
  ``python -u -m pulumi.policy <engine address> <pack folder>`` in the pack's folder, with ``PULUMI_PROJECT``,
  ``PULUMI_STACK``, ``PULUMI_DRY_RUN`` and ``PULUMI_CONFIG`` set; ``sdk/python/lib/pulumi/policy/__main__.py`` runs
  the pack's ``__main__.py``, whose ``PolicyPack`` serves the analyzer and prints its port.
- ``pkg/engine/update.go`` (``LoadLocalPolicyPackAnalyzers``) and ``pkg/resource/analyzer/config.go``: the
  ``--policy-pack-config`` file (a level, or an object with ``enforcementLevel`` and properties, per policy, ``all``
  for every policy) is laid over each policy's level and schema defaults, validated against the policy's config
  schema, and sent with ``Configure``.
- ``pkg/resource/deploy/step_generator.go``: each registered resource goes through ``Remediate`` then ``Analyze``
  before its step (a mandatory violation makes the resource invalid and stops the deployment); ``AnalyzeStack``
  runs over every resource at the end; an ``enforcementLevel`` of ``remediate`` reported by a validation counts as
  mandatory.

Properties travel as the engine marshals them (``KeepSecrets``): a secret as ``{sig: secret, value: ...}``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_KIND = "1b47061264138c4ac30d75fd1eb44270"
#: How long a pack may take to print its port, and any one call, before the stand-in gives up on it.
START_TIMEOUT_S = 120.0
CALL_TIMEOUT_S = 120.0

_LEVELS = {analyzer_pb2.ADVISORY: "advisory", analyzer_pb2.MANDATORY: "mandatory",
           analyzer_pb2.DISABLED: "disabled", analyzer_pb2.REMEDIATE: "remediate"}
_LEVEL_CODES = {name: code for code, name in _LEVELS.items()}
_SEVERITIES = {1: "low", 2: "medium", 3: "high", 4: "critical"}


class PolicyPackError(Exception):
    """The pack could not be started, configured or called: the CLI's own error line."""


def _end_with_parent() -> None:
    """In the pack's process before it starts: on Linux, have it terminated when the stand-in ends, even if the
    stand-in is killed before it could stop the pack itself (a pack otherwise serves forever)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def abbreviated(path: str) -> str:
    """The pack's path as the CLI names a local pack in events (``abbreviateFilePath`` in pkg/engine/update.go)."""
    path = os.path.normpath(path)
    if len(path) > 75:
        dirs = path.split("/")
        if len(dirs) > 4:
            dirs = [*dirs[:2], "...", *dirs[-2:]]
        path = "/".join(dirs)
    return path


def _unsealed(secret: dict[str, Any]) -> Any:
    """A secret's value: given as pulumi serializes it (``value``), or as the stand-in keeps it (``ciphertext``)."""
    if "value" in secret:
        return secret["value"]
    try:
        return json.loads(base64.b64decode(secret.get("ciphertext", ""), validate=True))
    except ValueError:
        return "[secret]"


def _marshal(value: Any) -> Any:
    """A value as the engine sends it to an analyzer: secrets as secret values (``[secret]`` marks included)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG):
            return {SECRET_SIG: SECRET_KIND, "value": _unsealed(value)}
        return {k: _marshal(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_marshal(v) for v in value]
    if value == "[secret]":
        return {SECRET_SIG: SECRET_KIND, "value": "[secret]"}
    return value


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(_marshal(value))
    return out


def load_config_file(path: str) -> dict[str, dict[str, Any]]:
    """``parsePolicyPackConfig``: policy -> {"enforcementLevel"?, "properties"?}."""
    text = Path(path).read_text() if path else ""
    if not text.strip():
        return {}
    raw = json.loads(text)
    raw.pop("environments", None)
    found: dict[str, dict[str, Any]] = {}
    for name, value in raw.items():
        if isinstance(value, str):
            if value not in _LEVEL_CODES:
                raise PolicyPackError(f'parsing enforcement level for "{name}": "{value}" is not a valid '
                                      "enforcement level")
            found[name] = {"enforcementLevel": value}
        elif isinstance(value, dict):
            props = dict(value)
            level = props.pop("enforcementLevel", None)
            if level is not None and level not in _LEVEL_CODES:
                raise PolicyPackError(f'parsing enforcement level for "{name}": "{level}" is not a valid '
                                      "enforcement level")
            entry: dict[str, Any] = {}
            if level:
                entry["enforcementLevel"] = level
            if props:
                entry["properties"] = props
            if entry:
                found[name] = entry
        else:
            raise PolicyPackError(f'parsing "{name}": {value} is not a valid value; must be a string or object')
    return found


class PolicyPack:
    """One local pack, started as the CLI starts it; ``close()`` always stops its process."""

    def __init__(self, path: str, config_file: str, *, stack: str, project: str, dry_run: bool,
                 config: dict[str, str], log: Any = None):
        self.path = os.path.abspath(path)
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self._channel: grpc.Channel | None = None
        self._stderr = tempfile.TemporaryFile()
        try:
            self._start(stack, project, dry_run, config)
            self._configure(config_file)
        except BaseException:
            self.close()
            raise

    # -- start -----------------------------------------------------------------------------------------------------

    def _start(self, stack: str, project: str, dry_run: bool, config: dict[str, str]) -> None:
        if not (Path(self.path) / "PulumiPolicy.yaml").is_file():
            raise PolicyPackError(f'failed to load Pulumi policy project located at "{self.path}": no '
                                  "PulumiPolicy.yaml")
        # The language plugin's toolchain: PULUMI_PYTHON_CMD when set, else python3 on PATH.
        python = os.environ.get("PULUMI_PYTHON_CMD") or shutil.which("python3") or sys.executable
        env = {**os.environ, "PULUMI_PROJECT": project, "PULUMI_STACK": stack,
               "PULUMI_DRY_RUN": "true" if dry_run else "false", "PULUMI_CONFIG": json.dumps(config)}
        # pulumi.policy takes the engine's address as its first argument and does not call it: the stand-in has
        # no engine to offer, so it names none that answers.
        self.process = subprocess.Popen([python, "-u", "-m", "pulumi.policy", "127.0.0.1:0", self.path],
                                        cwd=self.path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=self._stderr, preexec_fn=_end_with_parent)
        self.pid = self.process.pid
        self._note("policy-pack-started", path=self.path, argv=self.process.args)
        port = self._read_port()
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self._channel)
        try:
            self.stub.Handshake(analyzer_pb2.AnalyzerHandshakeRequest(
                engine_address="127.0.0.1:0", root_directory=self.path, program_directory=self.path),
                timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:  # a pack may predate the handshake: skipped then
                raise self._failed(f"failed to handshake: {exc.details()}") from None
        request = analyzer_pb2.AnalyzerStackConfigureRequest(stack=stack, project=project, organization="",
                                                             dry_run=dry_run)
        for key, value in config.items():
            request.config[key] = value
        try:
            self.stub.ConfigureStack(request, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise self._failed(f"StackConfigure: {exc.details()}") from None

    def _read_port(self) -> int:
        assert self.process is not None and self.process.stdout is not None
        found: list[bytes] = []
        stdout = self.process.stdout
        first = threading.Event()

        def read() -> None:
            found.append(stdout.readline())
            first.set()
            for _ in iter(stdout.readline, b""):  # the rest of the pack's output: drained, so it never blocks
                pass

        threading.Thread(target=read, daemon=True).start()
        first.wait(START_TIMEOUT_S)
        line = found[0].strip() if found else b""
        if not line.isdigit():
            why = "it printed no port" if found else f"it printed no port within {START_TIMEOUT_S:.0f}s"
            raise self._failed(why)
        return int(line)

    def _failed(self, why: str) -> PolicyPackError:
        self._stderr.seek(0)
        said = self._stderr.read().decode(errors="replace").strip().splitlines()
        tail = f": {said[-1]}" if said else ""
        return PolicyPackError(f'policy pack "{self.path}" failed to start: {why}{tail}')

    # -- configure -------------------------------------------------------------------------------------------------

    def _configure(self, config_file: str) -> None:
        info = self.stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=CALL_TIMEOUT_S)
        self.name = info.name
        self.version = info.version
        self.policies = {p.name: p for p in info.policies}
        if not info.supportsConfig:
            if config_file:
                raise PolicyPackError(f'policy pack "{info.name}" at "{self.path}" does not support config')
            return
        given = load_config_file(config_file)
        # createConfigWithDefaults, then applyConfig (initial config, then the file), then validation
        result: dict[str, dict[str, Any]] = {}
        for policy in info.policies:
            schema = json_format.MessageToDict(policy.configSchema.properties) if policy.HasField(
                "configSchema") else {}
            defaults = {k: v["default"] for k, v in schema.items() if isinstance(v, dict) and "default" in v}
            result[policy.name] = {"enforcementLevel": _LEVELS[policy.enforcementLevel],
                                   "properties": defaults or None}
        initial = {k: {"enforcementLevel": _LEVELS[v.enforcementLevel] if v.enforcementLevel in _LEVELS else None,
                       "properties": json_format.MessageToDict(v.properties) or None}
                   for k, v in info.initialConfig.items()}
        for layer in (initial, given):
            result = _apply(result, layer)
        errors = self._validate(info, result)
        if errors:
            raise PolicyPackError(f'validating policy config for "{info.name}": {"; ".join(sorted(errors))}')
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, entry in result.items():
            config = analyzer_pb2.PolicyConfig(enforcementLevel=_LEVEL_CODES[entry.get("enforcementLevel")
                                                                             or "advisory"])
            if entry.get("properties"):
                config.properties.update(entry["properties"])
            request.policyConfig[name].CopyFrom(config)
        self.stub.Configure(request, timeout=CALL_TIMEOUT_S)
        self._note("policy-pack-configured", pack=info.name, version=info.version,
                   config={k: v.get("enforcementLevel") for k, v in result.items()})

    @staticmethod
    def _validate(info: Any, result: dict[str, dict[str, Any]]) -> list[str]:
        try:
            import jsonschema
        except ImportError:  # the CLI validates with gojsonschema; without a validator here the check is skipped
            return []
        errors = []
        for policy in info.policies:
            if not policy.HasField("configSchema"):
                continue
            schema: dict[str, Any] = {"type": "object"}
            props = json_format.MessageToDict(policy.configSchema.properties)
            if props:
                schema["properties"] = props
            if policy.configSchema.required:
                schema["required"] = list(policy.configSchema.required)
            document = (result.get(policy.name) or {}).get("properties") or {}
            for err in jsonschema.Draft7Validator(schema).iter_errors(document):
                errors.append(f"{policy.name}: {err.message}")
        return errors

    # -- analyze ---------------------------------------------------------------------------------------------------

    def _request(self, res: dict[str, Any], stack_wide: bool = False) -> Any:
        options = analyzer_pb2.AnalyzerResourceOptions(parent=res.get("parent_urn") or "",
                                                       protect=bool(res.get("protect")))
        fields: dict[str, Any] = {"urn": res["urn"], "type": res["type"], "name": res["name"],
                                  "properties": _struct(res.get("inputs") or {}), "options": options}
        provider = res.get("provider_resource")
        if provider is not None:
            fields["provider"] = analyzer_pb2.AnalyzerProviderResource(
                type=provider["type"], urn=provider["urn"], name=provider["name"],
                properties=_struct(provider.get("inputs") or {}))
        if not stack_wide:
            return analyzer_pb2.AnalyzeRequest(**fields)
        return analyzer_pb2.AnalyzerResource(**fields, parent=res.get("parent_urn") or "",
                                             dependencies=list(res.get("dependency_urns") or []))

    def remediate(self, res: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """``Remediate``: new inputs when a remediation rewrote them, and the diagnostics it reported."""
        try:
            response = self.stub.Remediate(self._request(res), timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None, []
            raise PolicyPackError(f"failed to run remediation: {exc.details()}") from None
        inputs = None
        diagnostics = []
        for item in response.remediations:
            if item.diagnostic:
                diagnostics.append({"policyName": item.policyName, "message": item.diagnostic,
                                    "enforcementLevel": "advisory", "urn": res["urn"], "severity": ""})
            elif item.HasField("properties"):
                inputs = json_format.MessageToDict(item.properties)
        return inputs, diagnostics

    def analyze(self, res: dict[str, Any]) -> list[dict[str, Any]]:
        """``Analyze`` one resource: its violations (``policyName``, ``message``, ``enforcementLevel``, ...)."""
        try:
            response = self.stub.Analyze(self._request(res), timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise PolicyPackError(f"failed to run policy: {exc.details()}") from None
        return [self._diagnostic(d) for d in response.diagnostics]

    def analyze_stack(self, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``AnalyzeStack`` over every resource of the deployment."""
        request = analyzer_pb2.AnalyzeStackRequest(resources=[self._request(r, True) for r in resources])
        try:
            response = self.stub.AnalyzeStack(request, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return []
            raise PolicyPackError(f"failed to run stack policies: {exc.details()}") from None
        return [self._diagnostic(d) for d in response.diagnostics]

    def _diagnostic(self, d: Any) -> dict[str, Any]:
        level = _LEVELS.get(d.enforcementLevel, "advisory")
        if level == "remediate":  # a validation failure of a remediation policy is mandatory
            level = "mandatory"
        return {"policyName": d.policyName, "policyPackName": d.policyPackName or self.name,
                "policyPackVersion": d.policyPackVersion or self.version, "message": d.message,
                "enforcementLevel": level, "urn": d.urn, "severity": _SEVERITIES.get(d.severity, "")}

    # -- stop ------------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection and stop the plugin's process (terminate, then kill), whatever happened before."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
            self._note("policy-pack-stopped", returncode=process.returncode)
        self._stderr.close()

    def _note(self, what: str, **detail: Any) -> None:
        if self._log is not None:
            self._log({"policy": what, "pid": self.pid, **detail})


def _apply(result: dict[str, dict[str, Any]], layer: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``applyConfig``: a level for ``all`` first, then each policy's level and properties over what is there."""
    result = {k: dict(v) for k, v in result.items()}
    everyone = (layer.get("all") or {}).get("enforcementLevel")
    if everyone in _LEVEL_CODES:
        for entry in result.values():
            entry["enforcementLevel"] = everyone
    for name, given in layer.items():
        entry = result.setdefault(name, {"enforcementLevel": None, "properties": None})
        if given.get("enforcementLevel") in _LEVEL_CODES:
            entry["enforcementLevel"] = given["enforcementLevel"]
        if given.get("properties"):
            entry["properties"] = {**(entry.get("properties") or {}), **given["properties"]}
    return result
