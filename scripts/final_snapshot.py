"""Print the snapshots kept of a deleted stack's database (DeletionPolicy: Snapshot), to restore from."""

from __future__ import annotations

import argparse
import sys

import boto3


def kept_snapshots(stack: str, rds=None) -> list[dict]:
    """The manual cluster snapshots CloudFormation took of the stack's database, newest first."""
    rds = rds or boto3.client("rds")
    pages = rds.get_paginator("describe_db_cluster_snapshots").paginate(SnapshotType="manual")
    prefix = f"{stack.lower()}-databasecluster"
    found = [
        snapshot
        for page in pages
        for snapshot in page["DBClusterSnapshots"]
        if snapshot["DBClusterSnapshotIdentifier"].lower().startswith(prefix)
        or snapshot.get("DBClusterIdentifier", "").lower().startswith(prefix)
    ]
    return sorted(found, key=lambda s: str(s.get("SnapshotCreateTime", "")), reverse=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", required=True)
    args = parser.parse_args(argv)
    snapshots = kept_snapshots(args.stack)
    if not snapshots:
        print(f"no kept snapshot of {args.stack}'s database (the stack had none, or it is still being taken)")
        return 0
    for snapshot in snapshots:
        print(
            f"kept: {snapshot['DBClusterSnapshotIdentifier']} ({snapshot.get('Status')}, "
            f"{snapshot.get('AllocatedStorage', '?')} GiB) - restore it with"
            " aws rds restore-db-cluster-from-snapshot; "
            "delete it when no longer needed (backup storage is billed)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
