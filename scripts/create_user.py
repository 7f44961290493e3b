"""Create a user in the stack's Cognito user pool, put them in a group, and print a token for the API.

    make user STACK=signoff-dev USERNAME=alice GROUP=approvers   # prints an access token

The pool and app client come from the stack's outputs (UserPoolId, UserPoolClientId), or from
--user-pool-id/--client-id. The password is generated (or --password) and set as permanent, so the
user can sign in at once; it is printed on stderr, the token alone on stdout (TOKEN=$(make -s user ...)).
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import string
import sys
from typing import Any

import boto3


def stack_outputs(stack: str, cloudformation: Any = None) -> dict[str, str]:
    """The outputs of a deployed stack, by key."""
    cloudformation = cloudformation or boto3.client("cloudformation")
    [described] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    return {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}


def new_password() -> str:
    """A password the stack's pool accepts (12+ characters, upper, lower, digits)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(20))
        if (
            any(c.islower() for c in password)
            and any(c.isupper() for c in password)
            and any(c.isdigit() for c in password)
        ):
            return password


def create_user(cognito: Any, pool_id: str, client_id: str, username: str, group: str, password: str) -> str:
    """Create (or reset) the user, add them to the group, sign in; return the access token.

    Args:
        cognito: a ``cognito-idp`` client.
        pool_id: the user pool.
        client_id: the app client the API's JWT authorizer accepts.
        username: the user's name (their ``sub`` becomes the runs' user id).
        group: a group of the pool (an ``ApproverGroups`` name); empty for none.
        password: the password to set.

    Returns:
        An access token carrying ``cognito:groups`` and the app client's ``client_id``.
    """
    with contextlib.suppress(cognito.exceptions.UsernameExistsException):
        cognito.admin_create_user(UserPoolId=pool_id, Username=username, MessageAction="SUPPRESS")
    cognito.admin_set_user_password(UserPoolId=pool_id, Username=username, Password=password, Permanent=True)
    if group:
        cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)
    answer = cognito.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    )
    return answer["AuthenticationResult"]["AccessToken"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="signoff-dev")
    parser.add_argument("--user-pool-id", default="")
    parser.add_argument("--client-id", default="")
    parser.add_argument("--username", required=True)
    parser.add_argument("--group", default="approvers")
    parser.add_argument("--password", default="")
    args = parser.parse_args(argv)
    pool_id, client_id = args.user_pool_id, args.client_id
    if not (pool_id and client_id):
        outputs = stack_outputs(args.stack)
        if "UserPoolId" not in outputs:
            print(
                f"{args.stack} has no Cognito user pool (it was deployed with a JwtIssuer)", file=sys.stderr
            )
            return 1
        pool_id, client_id = outputs["UserPoolId"], outputs["UserPoolClientId"]
    password = args.password or new_password()
    token = create_user(boto3.client("cognito-idp"), pool_id, client_id, args.username, args.group, password)
    print(f"user {args.username} (group {args.group or '-'}), password: {password}", file=sys.stderr)
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
