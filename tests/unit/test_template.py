"""template.yaml: the routes of the contract, handlers that exist, auth on by default, scoped secrets."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

# CONTRACT.md's routes and the function that must serve each one.
CONTRACT_ROUTES = {
    ("POST", "/agents/{agent_id}/runs"): "StartRunFunction",
    ("POST", "/agents/{agent_id}/runs/{run_id}/continue"): "ContinueRunFunction",
    ("POST", "/agents/{agent_id}/runs/{run_id}/cancel"): "ContinueRunFunction",
    ("GET", "/agents/{agent_id}/runs/{run_id}"): "ReadRunsFunction",
    ("GET", "/agents/{agent_id}/runs"): "ReadRunsFunction",
    ("GET", "/sessions"): "ReadRunsFunction",
    ("GET", "/sessions/{session_id}/runs"): "ReadRunsFunction",
    ("GET", "/openapi.json"): "ReadRunsFunction",
}
PUBLIC_ROUTES = {("GET", "/openapi.json")}
NO_VALUE = {"Ref": "AWS::NoValue"}


class _CfnLoader(yaml.SafeLoader):
    """A safe loader that reads CloudFormation short tags: ``!Ref X`` as ``{"Ref": "X"}``, etc."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    with (ROOT / "template.yaml").open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource.get("Properties", {})
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def _resolve(node: Any, conditions: dict[str, bool]) -> Any:
    """Evaluate every ``Fn::If`` for the given condition values and drop ``AWS::NoValue``, as
    AWS::LanguageExtensions does before the SAM transform."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, when_true, when_false = node["Fn::If"]
            return _resolve(when_true if conditions[name] else when_false, conditions)
        resolved = {key: _resolve(value, conditions) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value != NO_VALUE}
    if isinstance(node, list):
        return [_resolve(item, conditions) for item in node if _resolve(item, conditions) != NO_VALUE]
    return node


def _routes(template: dict[str, Any], conditions: dict[str, bool]) -> dict[tuple[str, str], dict[str, Any]]:
    """(method, path) → {"function", "auth", "api"} for every HttpApi event, each route once."""
    routes: dict[tuple[str, str], dict[str, Any]] = {}
    for name, props in _resolve(_functions(template), conditions).items():
        for event in (props.get("Events") or {}).values():
            if event["Type"] != "HttpApi":
                continue
            event_props = event["Properties"]
            key = (event_props["Method"].upper(), event_props["Path"])
            assert key not in routes, f"{key} is declared twice"
            routes[key] = {"function": name, "auth": event_props.get("Auth"), "api": event_props.get("ApiId")}
    return routes


def _modes() -> list[dict[str, bool]]:
    return [{"UseJwtAuth": jwt, "UseVpc": False, "UseAccessLogs": False} for jwt in (True, False)]


def test_every_contract_route_is_served_by_the_function_named_in_the_contract(template):
    # Given the template's HttpApi events
    routes = _routes(template, _modes()[0])

    # Then each route of the contract is served by its function, on the Signoff API
    for route, function in CONTRACT_ROUTES.items():
        assert route in routes, f"{route} is not routed"
        assert routes[route]["function"] == function, route
        assert routes[route]["api"] == {"Ref": "SignoffApi"}, route
    assert template["Resources"]["SignoffApi"]["Type"] == "AWS::Serverless::HttpApi"


def test_every_function_code_folder_holds_its_handler(template):
    for name, props in _functions(template).items():
        # Given the function's CodeUri and Handler ("module.function")
        module, _, handler = props["Handler"].rpartition(".")
        source = ROOT / props["CodeUri"] / (module.replace(".", "/") + ".py")

        # Then the code is its own folder (StartRunFunction: functions/start_run/)
        folder = re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Function")).lower()
        assert props["CodeUri"].rstrip("/") == f"functions/{folder}", name
        # And the module file exists and defines the handler at top level
        assert source.is_file(), f"{name}: {source.relative_to(ROOT)} is missing"
        tree = ast.parse(source.read_text(encoding="utf-8"))
        defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        defined |= {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        assert handler in defined, f"{name}: {source.relative_to(ROOT)} defines no {handler}"


def test_layers_point_at_the_package_folders_that_the_handlers_import(template):
    resources = template["Resources"]
    layers = {name: resources[name] for name in ("SignoffLayer", "AgentsLayer")}
    assert (ROOT / layers["SignoffLayer"]["Properties"]["ContentUri"] / "signoff" / "__init__.py").is_file()
    assert (ROOT / layers["SignoffLayer"]["Properties"]["ContentUri"] / "requirements.txt").is_file()
    assert (ROOT / layers["AgentsLayer"]["Properties"]["ContentUri"] / "catalog" / "__init__.py").is_file()
    for layer in layers.values():
        assert layer["Metadata"]["BuildMethod"] == "python3.12"
        assert layer["Metadata"]["BuildArchitecture"] == "arm64"
    assert template["Globals"]["Function"]["Layers"] == [{"Ref": "SignoffLayer"}, {"Ref": "AgentsLayer"}]


def test_every_function_runs_python312_on_arm64(template):
    globals_ = template["Globals"]["Function"]
    for name, props in _functions(template).items():
        assert props.get("Runtime", globals_["Runtime"]) == "python3.12", name
        assert props.get("Architectures", globals_["Architectures"]) == ["arm64"], name


def test_environment_names_are_the_ones_the_settings_read(template):
    from signoff.config import Settings

    # Given the SIGNOFF_* variables that the template sets
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    names = {name for name in variables if name.startswith("SIGNOFF_")}

    # Then the settings read every one of them (a misspelt name would be silently ignored)
    read = {field.alias for field in Settings.model_fields.values()}
    assert names - read == set()
    assert variables["SIGNOFF_AGENTS_MODULE"] == "catalog"


def test_authentication_is_on_by_default_and_none_is_an_explicit_choice(template):
    # Given the AuthMode parameter
    auth_mode = template["Parameters"]["AuthMode"]
    assert auth_mode["Default"] == "jwt"
    assert set(auth_mode["AllowedValues"]) == {"jwt", "none"}
    assert template["Conditions"]["UseJwtAuth"] == {"Fn::Equals": [{"Ref": "AuthMode"}, "jwt"]}
    # SAM rejects intrinsics in HttpApi Auth unless AWS::LanguageExtensions resolves them first
    assert template["Transform"] == ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]

    for mode in _modes():
        api = _resolve(template["Resources"]["SignoffApi"]["Properties"], mode)
        routes = _routes(template, mode)
        if mode["UseJwtAuth"]:
            # Then with jwt, the JWT authorizer guards every route but the public ones
            authorizer = api["Auth"]["Authorizers"][api["Auth"]["DefaultAuthorizer"]]
            assert authorizer["JwtConfiguration"] == {
                "issuer": {"Ref": "JwtIssuer"},
                "audience": {"Ref": "JwtAudience"},
            }
            for route, info in routes.items():
                expected = {"Authorizer": "NONE"} if route in PUBLIC_ROUTES else None
                assert info["auth"] == expected, route
        else:
            # And with none, no authorizer is declared anywhere
            assert "Auth" not in api
            assert all(info["auth"] is None for info in routes.values())


def _policies(props: dict[str, Any]) -> list[Any]:
    policies = props.get("Policies") or []
    return policies if isinstance(policies, list) else [policies]


def _walk(node: Any):
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def test_each_function_reads_only_the_secrets_it_needs(template):
    needs_openai = {"StartRunFunction", "ContinueRunFunction"}
    for name, props in _functions(template).items():
        # Given the function's policies
        policies = _policies(props)
        secrets = [
            policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]
            for policy in policies
            if isinstance(policy, dict) and "AWSSecretsManagerGetSecretValuePolicy" in policy
        ]

        # Then it reads the database secret, and the OpenAI secret only if it calls the model
        expected = [{"Ref": "DatabaseSecretArn"}]
        if name in needs_openai:
            expected.append({"Ref": "OpenAISecretArn"})
        assert secrets == expected, name

        # And nothing grants wildcard Secrets Manager access
        for node in _walk(policies):
            if isinstance(node, str):
                assert "secretsmanager:*" not in node.lower(), name
                assert "SecretsManagerReadWrite" not in node, name
            if isinstance(node, dict) and "Resource" in node:
                assert node["Resource"] not in ("*", ["*"]), name


def test_migrations_run_on_deploy_and_rerun_when_the_library_changes(template):
    migrations = template["Resources"]["DatabaseMigrations"]
    assert migrations["Type"] == "Custom::SignoffMigrations"
    assert migrations["Properties"]["ServiceToken"] == {"Fn::GetAtt": ["MigrateFunction", "Arn"]}
    assert migrations["Properties"]["SignoffLayerVersion"] == {"Ref": "SignoffLayer"}
    migrate = _functions(template)["MigrateFunction"]
    assert migrate["Timeout"] == 300
    assert not migrate.get("Events")
