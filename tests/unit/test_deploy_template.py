"""template.yaml as CloudFormation deploys it (AWS::LanguageExtensions + the SAM transform, run offline by
scripts/translate_template.py) for the cheap profile, the production profile and the bring-your-own
path: every reference resolves, each function's role allows exactly the AWS calls its code makes, and
every service a function in the stack's private subnets calls is reachable."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
BYO = {
    "DatabaseSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:signoff/db-AbCdEf",
    "DatabaseHost": "db.example.internal",
    "OpenAISecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:signoff/openai-AbCdEf",
    "WebhookSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:signoff/webhook-AbCdEf",
    "VpcSubnetIds": "subnet-0a,subnet-0b",
    "VpcSecurityGroupIds": "sg-0a",
    "AuthMode": "none",
}
VARIANTS = {
    "cheap": {},
    "production": {"Profile": "production", "BedrockModels": "anthropic.claude-3-5-haiku-20241022-v1:0"},
    "bring-your-own": BYO,
}
PSEUDO = {
    "AWS::Region",
    "AWS::AccountId",
    "AWS::Partition",
    "AWS::StackName",
    "AWS::StackId",
    "AWS::URLSuffix",
}
PSEUDO |= {"AWS::NoValue", "AWS::NotificationARNs"}

# What the code calls (signoff/runtime.py, queue.py, channels/eventbridge.py, upkeep_gate.py) →
# IAM actions and the endpoint service that carries it.
MODEL_CALLERS = {"StartRunFunction", "ContinueRunFunction", "ResumeWorkerFunction", "KnowledgeFunction"}
PAUSING = {"StartRunFunction", "ContinueRunFunction", "ResumeWorkerFunction"}
QUEUE_SENDERS = PAUSING | {"ApprovalsFunction", "ExpireApprovalsFunction", "KnowledgeFunction"}
SQS_POLLER = "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"  # the worker's trigger
BASIC_ROLES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
VPC_ROLE = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"


@pytest.fixture(scope="module", params=list(VARIANTS))
def deployed(request) -> tuple[str, dict[str, Any], dict[str, str]]:
    if not SAM_PYTHON.exists():
        pytest.skip("the SAM CLI venv (.venv-sam) is not set up")
    overrides = VARIANTS[request.param]
    args = [str(SAM_PYTHON), str(ROOT / "scripts" / "translate_template.py")]
    args += [f"{key}={value}" for key, value in overrides.items()]
    out = subprocess.run(
        args, capture_output=True, text=True, check=True, timeout=300, env={"SAM_CLI_TELEMETRY": "0"}
    )
    template = json.loads(out.stdout)
    values = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
    values.update(overrides)
    return request.param, template, values


class Evaluator:
    """The parameter-level intrinsics: conditions, Fn::If, parameter Refs (as CloudFormation does)."""

    def __init__(self, template: dict[str, Any], values: dict[str, str]) -> None:
        self.template, self.values, self._conditions = template, values, {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = self.truth(self.template["Conditions"][name])
        return self._conditions[name]

    def scalar(self, node: Any) -> Any:
        if isinstance(node, dict) and "Ref" in node:
            return self.values[node["Ref"]]
        if isinstance(node, dict) and "Fn::Join" in node:
            sep, items = node["Fn::Join"]
            items = self.scalar(items)
            return sep.join(items if isinstance(items, list) else items.split(","))
        return node

    def truth(self, node: Any) -> bool:
        ((key, arg),) = node.items()
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Equals":
            return str(self.scalar(arg[0])) == str(self.scalar(arg[1]))
        if key == "Fn::Not":
            return not self.truth(arg[0])
        if key == "Fn::And":
            return all(self.truth(item) for item in arg)
        if key == "Fn::Or":
            return any(self.truth(item) for item in arg)
        raise AssertionError(node)

    def active(self) -> dict[str, dict[str, Any]]:
        return {
            name: resource
            for name, resource in self.template["Resources"].items()
            if "Condition" not in resource or self.condition(resource["Condition"])
        }

    def taken(self, node: Any) -> Any:
        """The node with every Fn::If replaced by its branch and AWS::NoValue dropped."""
        if isinstance(node, dict):
            if set(node) == {"Fn::If"}:
                name, yes, no = node["Fn::If"]
                return self.taken(yes if self.condition(name) else no)
            out = {key: self.taken(value) for key, value in node.items()}
            return {key: value for key, value in out.items() if value != {"Ref": "AWS::NoValue"}}
        if isinstance(node, list):
            return [self.taken(item) for item in node if self.taken(item) != {"Ref": "AWS::NoValue"}]
        return node


def _references(node: Any, local: frozenset[str] = frozenset()):
    """(kind, name) of every Ref, GetAtt and ${...} in a taken node."""
    if isinstance(node, dict):
        if "Ref" in node and len(node) == 1:
            yield "Ref", node["Ref"]
            return
        if "Fn::GetAtt" in node:
            target = node["Fn::GetAtt"]
            yield "GetAtt", (target[0] if isinstance(target, list) else target.split(".")[0])
            return
        if "Fn::Sub" in node:
            sub = node["Fn::Sub"]
            text, variables = (sub, {}) if isinstance(sub, str) else sub
            yield from _references(variables, local)
            for name in re.findall(r"\$\{([^!][^}]*)\}", text):
                if name.split(".")[0] not in variables:
                    yield "Sub", name.split(".")[0] if not name.startswith("AWS::") else name
            return
        for value in node.values():
            yield from _references(value, local)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item, local)
    elif isinstance(node, str):
        # the local transform leaves some ${X} of a resolved Fn::Sub in plain strings
        for name in re.findall(r"\$\{([A-Za-z][A-Za-z0-9:.]*)\}", node):
            yield "Sub", name if name.startswith("AWS::") else name.split(".")[0]


def test_every_ref_getatt_and_sub_resolves_to_something_the_stack_has(deployed):
    variant, template, values = deployed
    evaluator = Evaluator(template, values)
    resources = evaluator.active()
    known = set(resources) | set(template["Parameters"]) | PSEUDO
    for name, resource in resources.items():
        for kind, target in _references(evaluator.taken(resource)):
            assert target in known, (
                f"{variant}: {name} has {kind} {target}, which this variant does not create"
            )
            if kind == "GetAtt":
                assert target in resources, (variant, name, target)
    for name, output in template.get("Outputs", {}).items():
        if "Condition" in output and not evaluator.condition(output["Condition"]):
            continue
        for kind, target in _references(evaluator.taken(output)):
            assert target in known, (variant, name, kind, target)


def _role_actions(evaluator: Evaluator, resources: dict, role: dict) -> tuple[set[str], set[str], list]:
    actions, managed, statements = set(), set(), []
    for policy in role.get("Policies", []):
        statements += policy["PolicyDocument"]["Statement"]
    for arn in role.get("ManagedPolicyArns", []):
        if isinstance(arn, dict):
            statements += resources[arn["Ref"]]["Properties"]["PolicyDocument"]["Statement"]
        else:
            managed.add(arn)
    for statement in statements:
        listed = statement["Action"]
        actions |= set(listed if isinstance(listed, list) else [listed])
    return actions, managed, statements


def test_each_function_role_allows_the_calls_its_code_makes_and_no_more(deployed):
    variant, template, values = deployed
    evaluator = Evaluator(template, values)
    resources = {name: evaluator.taken(resource) for name, resource in evaluator.active().items()}
    functions = {
        name: r
        for name, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function" and "Layers" in r["Properties"]
    }
    assert len(functions) == 9
    production = variant == "production"
    for name, function in functions.items():
        role = resources[function["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
        actions, managed, statements = _role_actions(evaluator, resources, role)

        expected = {"rds-db:connect"} if production else {"secretsmanager:GetSecretValue"}
        bedrock = bool(
            "".join(values.get("BedrockModels") or [])
            if isinstance(values.get("BedrockModels"), list)
            else values.get("BedrockModels")
        )
        has_openai = bool(values.get("OpenAISecretArn")) or not bedrock  # the stack's secret otherwise
        if (name in MODEL_CALLERS and has_openai) or (
            name in PAUSING | {"ApprovalsFunction"} and values["WebhookSecretArn"]
        ):
            expected.add("secretsmanager:GetSecretValue")
        if name in MODEL_CALLERS and bedrock:
            expected.add("bedrock:InvokeModel")
        if name in QUEUE_SENDERS:
            expected.add("sqs:SendMessage*")
        if name in PAUSING and values["EventBusName"]:
            expected.add("events:PutEvents")
        if name == "ExpireApprovalsFunction" and values["Profile"] == "cheap":
            expected |= {"ssm:GetParameter", "ssm:PutParameter", "cloudwatch:GetMetricData"}
        if name == "MigrateFunction" and evaluator.condition("CreateUserPool"):
            # the inbox's sign-in (functions/migrate/signin.py), on the stack's user pool only
            expected |= {"cognito-idp:DescribeUserPoolClient", "cognito-idp:UpdateUserPoolClient"}
            [cognito] = [st for st in statements if "cognito-idp:UpdateUserPoolClient" in st["Action"]]
            assert cognito["Resource"] == {"Fn::GetAtt": ["UserPool", "Arn"]}, cognito
        assert actions == expected, (variant, name, actions ^ expected)
        expected_managed = BASIC_ROLES | ({VPC_ROLE} if "VpcConfig" in function["Properties"] else set())
        assert managed == expected_managed | ({SQS_POLLER} if name == "ResumeWorkerFunction" else set()), name
        for statement in statements:
            if statement["Action"] != "cloudwatch:GetMetricData":  # no resource-level permissions exist
                assert statement["Resource"] not in ("*", ["*"]), (variant, name, statement)


def test_the_code_calls_no_aws_service_the_roles_above_do_not_know():
    # A new boto3 client in the library must come with its IAM (and endpoint) in the template and here
    sources = [*(ROOT / "layers" / "signoff" / "signoff").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    called = set(re.findall(r'client\(\s*"([a-z-]+)"', "".join(path.read_text() for path in sources)))
    assert called == {"sqs", "events", "rds", "ssm", "cloudwatch", "bedrock-runtime", "cognito-idp"}


def test_every_service_a_function_in_the_stacks_subnets_calls_has_an_endpoint_or_a_route_out(deployed):
    _variant, template, values = deployed
    evaluator = Evaluator(template, values)
    resources = {name: evaluator.taken(resource) for name, resource in evaluator.active().items()}
    if "Vpc" not in resources:
        pytest.skip("bring-your-own: the user's VPC (VpcSubnetIds help names what it needs)")
    functions = [
        r for r in resources.values() if r["Type"] == "AWS::Lambda::Function" and "Layers" in r["Properties"]
    ]
    for function in functions:
        vpc = function["Properties"]["VpcConfig"]
        assert vpc["SubnetIds"] == [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]
        assert vpc["SecurityGroupIds"] == [{"Ref": "FunctionSecurityGroup"}]
    private_tables = {
        r["Properties"]["RouteTableId"]["Ref"]
        for r in resources.values()
        if r["Type"] == "AWS::EC2::SubnetRouteTableAssociation"
        and r["Properties"]["SubnetId"]["Ref"] in ("PrivateSubnetA", "PrivateSubnetB")
    }
    assert private_tables == {"PrivateRouteTable"}
    routes_out = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::EC2::Route"
        and r["Properties"]["RouteTableId"] == {"Ref": "PrivateRouteTable"}
        and r["Properties"]["DestinationCidrBlock"] == "0.0.0.0/0"
    ]
    # Then one way out (the NAT instance when cheap, a NAT gateway in production) for the model API,
    # Slack and NotifyUrl, and for every AWS service without an endpoint
    assert len(routes_out) == 1
    assert ("InstanceId" in routes_out[0]) == (values["Profile"] == "cheap")
    endpoints = {
        str(
            r["Properties"]["ServiceName"].get("Fn::Sub")
            if isinstance(r["Properties"]["ServiceName"], dict)
            else r["Properties"]["ServiceName"]
        ).rsplit(".", 1)[-1]
        for r in resources.values()
        if r["Type"] == "AWS::EC2::VPCEndpoint"
    }
    assert "s3" in endpoints  # CloudFormation's response URL, free, without the NAT
    if values["Profile"] == "production":
        # And the AWS services the functions call stay inside the VPC (IAM tokens need no call)
        assert {"secretsmanager", "sqs", "events", "bedrock-runtime"} <= endpoints
    egress = resources["FunctionSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    assert {(rule["FromPort"], rule["CidrIp"]) for rule in egress} == {(443, "0.0.0.0/0"), (80, "0.0.0.0/0")}


def test_the_database_accepts_connections_only_from_the_functions_or_their_proxy(deployed):
    _variant, template, values = deployed
    evaluator = Evaluator(template, values)
    resources = {name: evaluator.taken(resource) for name, resource in evaluator.active().items()}
    if "DatabaseCluster" not in resources:
        pytest.skip("bring-your-own database")
    ingress = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::EC2::SecurityGroupIngress"
        and r["Properties"]["GroupId"] == {"Ref": "DatabaseSecurityGroup"}
    ]
    source = "ProxySecurityGroup" if values["Profile"] == "production" else "FunctionSecurityGroup"
    assert [(i["FromPort"], i["SourceSecurityGroupId"]) for i in ingress] == [(5432, {"Ref": source})]
    cluster = resources["DatabaseCluster"]
    assert cluster["DeletionPolicy"] == "Snapshot" and cluster["Properties"]["DeletionProtection"] is True
    scaling = cluster["Properties"]["ServerlessV2ScalingConfiguration"]
    if values["Profile"] == "cheap":
        # Aurora may pause: 0 ACU after 300 s without connections; the server closes idle sessions first
        assert (scaling["MinCapacity"], scaling["SecondsUntilAutoPause"]) == (0, 300)
        parameters = resources["DatabaseParameters"]["Properties"]["Parameters"]
        assert int(parameters["idle_session_timeout"]) < 300_000
        env = resources["StartRunFunction"]["Properties"]["Environment"]["Variables"]
        assert int(env["SIGNOFF_DATABASE_MAX_IDLE_S"]) * 1000 < int(parameters["idle_session_timeout"])
        assert int(env["SIGNOFF_DATABASE_CONNECT_TIMEOUT_S"]) >= 15  # Aurora's resume
    else:
        assert scaling["MinCapacity"] > 0 and "SecondsUntilAutoPause" not in scaling
        auth = resources["DatabaseProxy"]["Properties"]
        assert auth["RequireTLS"] is True and auth["Auth"][0]["IAMAuth"] == "REQUIRED"


def test_every_log_group_has_a_retention_and_every_function_logs_to_one(deployed):
    _variant, template, values = deployed
    evaluator = Evaluator(template, values)
    resources = {name: evaluator.taken(resource) for name, resource in evaluator.active().items()}
    groups = {name for name, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"}
    for name in groups:
        # (the local transform substitutes parameter values in some places)
        retention = resources[name]["Properties"]["RetentionInDays"]
        assert retention in ({"Ref": "LogRetentionDays"}, values["LogRetentionDays"]), name
    for name, r in resources.items():
        if r["Type"] == "AWS::Lambda::Function" and "Layers" in r["Properties"]:
            assert r["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] in groups, name
    alarms = {
        r["Properties"].get("MetricName")
        or r["Properties"]["Metrics"][1]["MetricStat"]["Metric"]["MetricName"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert alarms == {
        "Errors",
        "Throttles",
        "5xx",
        "RunsErrored",
        "ApproximateAgeOfOldestMessage",
        "ApproximateNumberOfMessagesVisible",
    }
    assert any(r["Type"] == "AWS::CloudWatch::Dashboard" for r in resources.values())


def test_the_inbox_signs_in_at_the_stacks_hosted_ui_with_a_client_the_api_accepts(deployed):
    variant, template, values = deployed
    evaluator = Evaluator(template, values)
    resources = {name: evaluator.taken(resource) for name, resource in evaluator.active().items()}
    if not evaluator.condition("CreateUserPool"):
        assert "InboxClient" not in resources and "InboxSignIn" not in resources
        return
    # the inbox's client is public (PKCE, no secret) and an audience of the API's JWT authorizer
    client = resources["InboxClient"]["Properties"]
    assert client["GenerateSecret"] is False and client["UserPoolId"] == {"Ref": "UserPool"}
    schemes = resources["SignoffApi"]["Properties"]["Body"]["components"]["securitySchemes"]
    jwt = schemes["JwtAuthorizer"]["x-amazon-apigateway-authorizer"]["jwtConfiguration"]
    assert {"Ref": "InboxClient"} in jwt["audience"] and {"Ref": "UserPoolClient"} in jwt["audience"]
    # its OAuth settings come from the custom resource, with the API's own /inbox as the redirect
    signin = resources["InboxSignIn"]["Properties"]
    assert signin["ServiceToken"] == {"Fn::GetAtt": ["MigrateFunction", "Arn"]}
    assert signin["ClientId"] == {"Ref": "InboxClient"}
    [callback] = [_text(url) for url in signin["CallbackURLs"]]
    assert callback.startswith("https://${SignoffApi}.execute-api.") and callback.endswith("/inbox")
    # and the approvals function tells the page where to sign in
    env = resources["ApprovalsFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SIGNOFF_INBOX_CLIENT_ID"] == {"Ref": "InboxClient"}
    assert _text(env["SIGNOFF_INBOX_AUTHORIZE_URL"]).endswith(".amazoncognito.com/oauth2/authorize")
    assert _text(env["SIGNOFF_INBOX_TOKEN_URL"]).endswith(".amazoncognito.com/oauth2/token")
    assert resources["UserPoolDomain"]["Properties"]["UserPoolId"] == {"Ref": "UserPool"}
    assert variant in VARIANTS


def _text(node: Any) -> str:
    """A Fn::Sub's template (the local transform sometimes leaves it a plain string)."""
    return node["Fn::Sub"] if isinstance(node, dict) else node
