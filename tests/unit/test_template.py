"""template.yaml: the routes of the contract, handlers that exist, auth on by default, scoped secrets,
the resume queue and its worker, the upkeep schedule, and sample events that match the routes."""

from __future__ import annotations

import ast
import itertools
import json
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
    # AgentOS's approvals API: JWT like the runs routes.
    ("GET", "/approvals"): "ApprovalsFunction",
    ("GET", "/approvals/count"): "ApprovalsFunction",
    ("GET", "/approvals/{approval_id}"): "ApprovalsFunction",
    ("GET", "/approvals/{approval_id}/status"): "ApprovalsFunction",
    ("POST", "/approvals/{approval_id}/resolve"): "ApprovalsFunction",
    ("DELETE", "/approvals/{approval_id}"): "ApprovalsFunction",
    # The rest of the AgentOS surface its clients call: discovery, health and sessions.
    ("GET", "/health"): "ReadRunsFunction",
    ("GET", "/config"): "ReadRunsFunction",
    ("GET", "/agents"): "ReadRunsFunction",
    ("GET", "/agents/{agent_id}"): "ReadRunsFunction",
    ("GET", "/sessions/{session_id}"): "ReadRunsFunction",
    ("GET", "/sessions/{session_id}/runs/{run_id}"): "ReadRunsFunction",
    ("DELETE", "/sessions/{session_id}"): "SessionsFunction",
    ("POST", "/sessions/{session_id}/rename"): "SessionsFunction",
}
# Decisions from outside: they authenticate by signature or single-use token, not by JWT.
APPROVAL_ROUTES = {
    ("POST", "/approvals/webhook"): "ApprovalsFunction",
    ("POST", "/approvals/slack"): "ApprovalsFunction",
    ("GET", "/approve/{token}"): "ApprovalsFunction",
    ("POST", "/approve/{token}"): "ApprovalsFunction",
}
# The approver's inbox page and its files: public, they hold no data.
INBOX_ROUTES = {
    ("GET", "/inbox"): "ApprovalsFunction",
    ("GET", "/inbox/{asset}"): "ApprovalsFunction",
}
PUBLIC_ROUTES = {("GET", "/openapi.json"), ("GET", "/health"), *APPROVAL_ROUTES, *INBOX_ROUTES}
# Functions that can pause a run (and so announce it), and those that put work on the resume queue.
PAUSING = {"StartRunFunction", "ContinueRunFunction", "ResumeWorkerFunction"}
QUEUE_SENDERS = PAUSING | {"ApprovalsFunction", "ExpireApprovalsFunction", "KnowledgeFunction"}
READ_ONLY = {"ReadRunsFunction", "MigrateFunction"}
# Conditions on optional parameters: empty parameter → False.
OPTIONAL_CONDITIONS = (
    "HasPublicUrl",
    "HasEventBus",
    "HasWebhookSecret",
    "HasSlackSigningSecret",
    "HasAlarmTopic",
    "HasAuthDomainPrefix",
)
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
        if isinstance(resource, dict) and resource["Type"] == "AWS::Serverless::Function"
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
    """Every AuthMode, each with all optional parameters set and all empty (jwt + all set first), on
    the defaults' database (the stack's, cheap profile; test_deploy_template.py covers the others)."""
    return [
        {
            "UseJwtAuth": jwt,
            "UseVpc": True,
            "UseAccessLogs": False,
            "CreateDatabase": True,
            "CheapProfile": True,
            "CreateProxy": False,
            "CreateNatInstance": True,
            "UseExistingVpc": False,
            # All set: an OpenAI secret and Bedrock models given; all empty: the stack's OpenAI secret.
            "HasBedrockModels": optional,
            "UseBedrock": optional,
            "CreateBedrockEndpoint": False,
            "CreateUserPool": jwt,
            "CreateOpenAISecret": not optional,
            "HasOpenAISecret": True,
            "ProtectDatabase": True,
            **dict.fromkeys(OPTIONAL_CONDITIONS, optional),
        }
        for jwt, optional in itertools.product((True, False), (True, False))
    ]


def test_the_modes_cover_every_condition_of_the_template(template):
    # A condition added to the template without a value here would make _resolve fail obscurely
    assert set(template["Conditions"]) == set(_modes()[0])
    for name in OPTIONAL_CONDITIONS:
        condition = template["Conditions"][name]
        assert condition["Fn::Not"][0]["Fn::Equals"][1] == "", name


def test_every_contract_route_is_served_by_the_function_named_in_the_contract(template):
    # Given the template's HttpApi events
    routes = _routes(template, _modes()[0])

    # Then each route of the contract (and of the approvals) is served by its function, on the Signoff API
    for route, function in {**CONTRACT_ROUTES, **APPROVAL_ROUTES, **INBOX_ROUTES}.items():
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
    # The signoff layer is built by its Makefile (arm64 wheels, pruned, with .pyc); the agents layer by SAM.
    assert layers["SignoffLayer"]["Metadata"]["BuildMethod"] == "makefile"
    makefile = ROOT / layers["SignoffLayer"]["Properties"]["ContentUri"] / "Makefile"
    assert "build-SignoffLayer:" in makefile.read_text()
    assert layers["AgentsLayer"]["Metadata"]["BuildMethod"] == "python3.12"
    for layer in layers.values():
        assert layer["Metadata"]["BuildArchitecture"] == "arm64"
    assert template["Globals"]["Function"]["Layers"] == [{"Ref": "SignoffLayer"}, {"Ref": "AgentsLayer"}]


def test_every_function_runs_python312_on_arm64(template):
    globals_ = template["Globals"]["Function"]
    for name, props in _functions(template).items():
        assert props.get("Runtime", globals_["Runtime"]) == "python3.12", name
        assert props.get("Architectures", globals_["Architectures"]) == ["arm64"], name


def test_environment_names_are_the_ones_the_settings_read(template):
    from signoff.config import Settings

    # Given the SIGNOFF_* variables that the template sets, globally and per function
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    names = {name for name in variables if name.startswith("SIGNOFF_")}
    for props in _functions(template).values():
        own = (props.get("Environment") or {}).get("Variables") or {}
        names |= {name for name in own if name.startswith("SIGNOFF_")}

    # Then the settings read every one of them (a misspelt name would be silently ignored)
    read = Settings.env_names()
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
            # (the stack's Cognito user pool and app client when no JwtIssuer is given)
            authorizer = api["Auth"]["Authorizers"][api["Auth"]["DefaultAuthorizer"]]
            issuer = authorizer["JwtConfiguration"]["issuer"]
            assert "${UserPool}" in issuer["Fn::Sub"]
            # (the API's app client, and the inbox's public client signing people in with PKCE)
            assert authorizer["JwtConfiguration"]["audience"] == [
                {"Ref": "UserPoolClient"},
                {"Ref": "InboxClient"},
            ]
            raw = template["Resources"]["SignoffApi"]["Properties"]["Auth"]["Fn::If"][1]
            assert raw["Authorizers"]["JwtAuthorizer"]["JwtConfiguration"]["issuer"]["Fn::If"][2] == {
                "Ref": "JwtIssuer"
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
    needs_openai = {"StartRunFunction", "ContinueRunFunction", "ResumeWorkerFunction", "KnowledgeFunction"}
    # verifies signed webhooks, or signs the NotifyUrl notification of a pause
    needs_webhook = PAUSING | {"ApprovalsFunction"}
    needs_slack = {"ApprovalsFunction"}
    for mode, (name, raw) in itertools.product(_modes(), _functions(template).items()):
        # Given the function's policies, with the optional parameters set or empty
        policies = _policies(_resolve(raw, mode))
        secrets = [
            policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]
            for policy in policies
            if isinstance(policy, dict) and "AWSSecretsManagerGetSecretValuePolicy" in policy
        ]

        # Then it may reach the database (the one managed policy that knows which secret or proxy),
        # reads the OpenAI secret only if it calls the model (the stack's, by default), and the
        # approval secrets only if it uses them and they are configured (never an empty ARN)
        assert {"Ref": "DatabaseAccessPolicy"} in policies, name
        expected = []
        if name in needs_openai and mode["HasOpenAISecret"]:
            expected.append({"Ref": "OpenAISecret" if mode["CreateOpenAISecret"] else "OpenAISecretArn"})
        if name in needs_webhook and mode["HasWebhookSecret"]:
            expected.append({"Ref": "WebhookSecretArn"})
        if name in needs_slack and mode["HasSlackSigningSecret"]:
            expected.append({"Ref": "SlackSigningSecretArn"})
        assert secrets == expected, (name, mode)

        # And nothing grants wildcard Secrets Manager access
        for node in _walk(policies):
            if isinstance(node, str):
                assert "secretsmanager:*" not in node.lower(), name
                assert "SecretsManagerReadWrite" not in node, name
            if (
                isinstance(node, dict)
                and "Resource" in node
                and node.get("Action") != "cloudwatch:GetMetricData"
            ):
                # (GetMetricData has no resource-level permissions: the cheap profile's upkeep gate)
                assert node["Resource"] not in ("*", ["*"]), name


def test_only_the_functions_that_call_the_model_or_embed_may_invoke_bedrock_models(template):
    calls_model = {"StartRunFunction", "ContinueRunFunction", "ResumeWorkerFunction", "KnowledgeFunction"}
    policy = template["Resources"]["BedrockInvokePolicy"]
    assert policy["Condition"] == "UseBedrock"
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    # bedrock:InvokeModel alone (it authorizes Converse too), never on every model
    assert {tuple(s["Action"]) for s in statements} == {("bedrock:InvokeModel",)}
    assert all(s["Resource"] not in ("*", ["*"]) for s in statements)
    for mode, (name, raw) in itertools.product(_modes(), _functions(template).items()):
        granted = {"Ref": "BedrockInvokePolicy"} in _policies(_resolve(raw, mode))
        assert granted == (name in calls_model and mode["UseBedrock"]), (name, mode)


def test_migrations_run_on_deploy_and_rerun_when_the_library_changes(template):
    migrations = template["Resources"]["DatabaseMigrations"]
    assert migrations["Type"] == "Custom::SignoffMigrations"
    assert migrations["Properties"]["ServiceToken"] == {"Fn::GetAtt": ["MigrateFunction", "Arn"]}
    assert migrations["Properties"]["SignoffLayerVersion"] == {"Ref": "SignoffLayer"}
    migrate = _functions(template)["MigrateFunction"]
    assert migrate["Timeout"] == 300
    assert not migrate.get("Events")


def test_approval_routes_authenticate_themselves_not_with_a_jwt(template):
    for mode in _modes():
        routes = _routes(template, mode)
        for route, function in APPROVAL_ROUTES.items():
            # Then each approvals route is served by ApprovalsFunction, public under jwt, and with
            # no Auth block at all under none (NONE would be rejected without an authorizer)
            assert routes[route]["function"] == function, route
            assert routes[route]["auth"] == ({"Authorizer": "NONE"} if mode["UseJwtAuth"] else None), route
    approvals = _functions(template)["ApprovalsFunction"]
    assert approvals["Timeout"] <= 10  # Slack waits 3 s for an answer
    assert approvals.get("MemorySize", template["Globals"]["Function"]["MemorySize"]) == 256


def _policy_kinds(props: dict[str, Any], mode: dict[str, bool]) -> dict[str, list[Any]]:
    kinds: dict[str, list[Any]] = {}
    for policy in _policies(_resolve(props, mode)):
        if isinstance(policy, dict):
            for kind, args in policy.items():
                kinds.setdefault(kind, []).append(args)
        else:
            kinds.setdefault(policy, []).append(None)
    return kinds


def test_only_the_functions_that_need_them_may_queue_and_publish(template):
    for mode, (name, props) in itertools.product(_modes(), _functions(template).items()):
        kinds = _policy_kinds(props, mode)
        # Then the resume queue takes messages from the functions that start, decide or retry work
        queue = kinds.get("SQSSendMessagePolicy", [])
        if name in QUEUE_SENDERS:
            assert queue == [{"QueueName": {"Fn::GetAtt": ["ResumeQueue", "QueueName"]}}], name
        else:
            assert queue == [], name
        # And only functions that can pause a run publish to the bus, and only when one is set
        events = kinds.get("EventBridgePutEventsPolicy", [])
        if name in PAUSING and mode["HasEventBus"]:
            assert events == [{"EventBusName": {"Ref": "EventBusName"}}], name
        else:
            assert events == [], name
        # And nothing else grants SQS or EventBridge access (read functions stay without)
        text = json.dumps(kinds).lower()
        others = {
            kind for kind in kinds if kind not in ("SQSSendMessagePolicy", "EventBridgePutEventsPolicy")
        }
        assert not any(
            word in kind.lower() for kind in others for word in ("sqs", "eventbridge", "events")
        ), name
        if name in READ_ONLY:
            assert "sqs" not in text and "events:" not in text and "eventbridge" not in text, name


def test_the_worker_consumes_the_resume_queue_with_partial_batch_failures(template):
    resources = template["Resources"]
    worker = _functions(template)["ResumeWorkerFunction"]

    # Then the worker reads ResumeQueue in batches of 5 and reports failed records one by one
    events = [event for event in worker["Events"].values() if event["Type"] == "SQS"]
    assert len(events) == 1
    sqs = events[0]["Properties"]
    assert sqs["Queue"] == {"Fn::GetAtt": ["ResumeQueue", "Arn"]}
    assert sqs["BatchSize"] == 5
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # And it has its own deadline, not API Gateway's, and no reserved concurrency (RDS Proxy caps)
    assert worker["Timeout"] == 120
    assert int(worker["Environment"]["Variables"]["SIGNOFF_API_TIMEOUT_MS"]) < worker["Timeout"] * 1000
    assert "ReservedConcurrentExecutions" not in worker

    # And the queue is encrypted, outlasts 6 worker timeouts, and dead-letters after 5 receives
    queue = resources["ResumeQueue"]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["Properties"]["VisibilityTimeout"] >= 6 * worker["Timeout"]
    assert queue["Properties"]["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["ResumeDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    dlq = resources["ResumeDeadLetterQueue"]
    assert dlq["Type"] == "AWS::SQS::Queue"
    assert dlq["Properties"]["SqsManagedSseEnabled"] is True
    assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600

    # And an alarm fires on the first dead letter, notifying the topic only when one is given
    alarms = [
        r["Properties"]
        for r in resources.values()
        if isinstance(r, dict) and r["Type"] == "AWS::CloudWatch::Alarm" and "Dimensions" in r["Properties"]
    ]
    [alarm] = [
        a
        for a in alarms
        if a["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["ResumeDeadLetterQueue", "QueueName"]}
    ]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    for mode in _modes():
        actions = _resolve(alarm, mode).get("AlarmActions")
        assert actions == ([{"Ref": "AlarmTopicArn"}] if mode["HasAlarmTopic"] else None)

    # And the queue's URL reaches every function, and the stack says where the queues are
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["SIGNOFF_QUEUE_URL"] == {"Ref": "ResumeQueue"}
    assert {"ResumeQueueUrl", "ResumeDeadLetterQueueUrl", "ApprovalsWebhookUrl"} <= set(template["Outputs"])


def test_stale_approvals_are_expired_on_a_schedule(template):
    upkeep = _functions(template)["ExpireApprovalsFunction"]
    schedules = [event["Properties"] for event in upkeep["Events"].values() if event["Type"] == "Schedule"]
    assert [schedule["Schedule"] for schedule in schedules] == ["rate(5 minutes)"]


def test_optional_settings_default_to_off_and_accept_their_values(template):
    parameters = template["Parameters"]
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    settings = {
        "SIGNOFF_EVENT_BUS": ("EventBusName", "default", "my-bus"),
        "SIGNOFF_NOTIFY_URL": ("NotifyUrl", "", "https://hooks.example.com/signoff"),
        "SIGNOFF_SLACK_WEBHOOK_URL": ("SlackWebhookUrl", "", "https://hooks.slack.com/services/T/B/x"),
        "SIGNOFF_WEBHOOK_SECRET_ARN": (
            "WebhookSecretArn",
            "",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:signoff/webhook-AbCdEf",
        ),
        "SIGNOFF_SLACK_SIGNING_SECRET_ARN": (
            "SlackSigningSecretArn",
            "",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:signoff/slack-AbCdEf",
        ),
        "SIGNOFF_PUBLIC_URL": ("PublicUrl", "", "https://signoff.example.com"),
    }
    for variable, (name, default, example) in settings.items():
        # Given the parameter behind each optional setting
        parameter = parameters[name]
        assert variables[variable] == {"Ref": name}, variable
        assert parameter["Default"] == default, name
        # Then its pattern accepts empty (off) and a real value
        pattern = parameter.get("AllowedPattern")
        if pattern:
            assert re.fullmatch(pattern, "") and re.fullmatch(pattern, example), name
    assert parameters["SlackWebhookUrl"]["NoEcho"] is True
    assert not re.fullmatch(parameters["PublicUrl"]["AllowedPattern"], "https://signoff.example.com/")


def test_every_route_is_served_by_a_function_folder_with_its_handler(template):
    functions = _functions(template)
    for mode in _modes():
        for route, info in _routes(template, mode).items():
            props = functions[info["function"]]
            module = props["Handler"].rpartition(".")[0]
            source = ROOT / props["CodeUri"] / (module.replace(".", "/") + ".py")
            assert source.is_file(), f"{route}: {source.relative_to(ROOT)} is missing"


def _route_pattern(path: str) -> re.Pattern[str]:
    parts = [
        f"(?P<{segment[1:-1]}>[^/]+)" if segment.startswith("{") else re.escape(segment)
        for segment in path.strip("/").split("/")
    ]
    return re.compile("/" + "/".join(parts))


def _sample_events() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted((ROOT / "events").glob("*.json"))}


def test_each_sample_http_event_names_a_route_of_the_template(template):
    routes = _routes(template, _modes()[0])
    http_events = {name: data for name, data in _sample_events().items() if "routeKey" in data}
    assert {
        "approval_webhook.json",
        "approval_slack.json",
        "approval_link_get.json",
        "approval_link_post.json",
    } <= set(http_events)
    for name, data in http_events.items():
        # Given the route the sample event claims to have matched
        method, path = data["routeKey"].split(" ", 1)
        # Then the template has that route, and the request path matches it as API Gateway would
        assert (method, path) in routes, name
        assert data["requestContext"]["routeKey"] == data["routeKey"], name
        assert data["requestContext"]["http"]["method"] == method, name
        match = _route_pattern(path).fullmatch(data["rawPath"])
        assert match is not None, name
        assert match.groupdict() == (data.get("pathParameters") or {}), name
        # And no route with more literal segments would have taken the request instead
        literal = (method, data["rawPath"])
        assert literal not in routes or literal == (method, path), name


def test_the_queue_and_schedule_samples_are_for_their_functions(template):
    events = _sample_events()

    # The SQS sample is a resume message from a queue named after the stack's ResumeQueue
    [record] = events["resume_queue.json"]["Records"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].split(":")[-1].startswith("signoff-dev-ResumeQueue")
    assert json.loads(record["body"]) == {
        "kind": "resume",
        "run_id": "__RUN_ID__",
        "agent_id": "data_manager",
    }
    assert "ResumeQueue" in template["Resources"]

    # The schedule sample is what the EventBridge rule of the upkeep schedule sends
    schedule = events["expire_schedule.json"]
    assert (schedule["source"], schedule["detail-type"]) == ("aws.events", "Scheduled Event")
    assert "ExpireApprovalsFunction" in schedule["resources"][0]
