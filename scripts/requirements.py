"""Generates layers/signoff/requirements.txt from pyproject.toml (or checks it is current)."""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYER_REQUIREMENTS = ROOT / "layers" / "signoff" / "requirements.txt"
HEADER = "# Generated from pyproject.toml by `make requirements`; do not edit.\n"


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def layer_text() -> str:
    return HEADER + "".join(f"{dep}\n" for dep in project()["dependencies"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    parser.add_argument("--print-all", action="store_true", help="print runtime + dev requirements")
    args = parser.parse_args()
    if args.print_all:
        meta = project()
        print("\n".join(meta["dependencies"] + meta["optional-dependencies"]["dev"]))
        return 0
    wanted = layer_text()
    if args.check:
        current = LAYER_REQUIREMENTS.read_text() if LAYER_REQUIREMENTS.exists() else ""
        if current != wanted:
            print(f"{LAYER_REQUIREMENTS} is out of date: run `make requirements`", file=sys.stderr)
            return 1
        return 0
    LAYER_REQUIREMENTS.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
