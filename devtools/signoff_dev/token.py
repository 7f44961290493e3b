"""`make token`: mint a local dev JWT that `SIGNOFF_AUTH=jwt make dev` accepts.

    python -m signoff_dev.token --user alice --groups ops,admins [--ttl 3600]

prints the token alone (for ``curl -H "Authorization: Bearer $(make -s token SUB=alice)"``). It is
HS256, signed with ``SIGNOFF_DEV_JWT_SECRET`` (default ``signoff-dev-secret``), issuer ``signoff-dev``,
audience ``signoff``; the groups go into the groups claim the runtime reads
(``SIGNOFF_JWT_GROUPS_CLAIM``, default ``cognito:groups``). A local token proves nothing anywhere else.
"""

from __future__ import annotations

import argparse
import sys

from signoff_dev.jwt import mint


def main(argv: list[str] | None = None) -> int:
    """Print a token.

    Args:
        argv: ``--user NAME [--groups a,b] [--ttl SECONDS] [--scope s ...]``.

    Returns:
        The exit code.
    """
    parser = argparse.ArgumentParser(prog="python -m signoff_dev.token", description=__doc__.split("\n")[0])
    parser.add_argument("--user", "--sub", dest="user", required=True, help="the sub claim (user id)")
    parser.add_argument("--groups", default="", help="comma- or space-separated groups")
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    parser.add_argument("--scope", action="append", default=[], help="an OAuth scope (repeatable)")
    args = parser.parse_args(argv)
    user = args.user.strip()
    if not user:
        parser.error("--user must not be empty")
    if args.ttl <= 0:
        parser.error("--ttl must be positive")
    groups = [group for group in args.groups.replace(",", " ").split() if group]
    print(mint(user, groups=groups, ttl_s=args.ttl, scopes=args.scope))
    return 0


if __name__ == "__main__":
    sys.exit(main())
