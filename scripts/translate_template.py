"""Print template.yaml as CloudFormation would deploy it: AWS::LanguageExtensions, then the SAM transform.

Offline (no AWS call): runs under the SAM CLI's venv (`.venv-sam/bin/python scripts/translate_template.py
Profile=production AuthMode=none ...`), as `sam validate --language-extensions` does, with the parameter
values given (the defaults otherwise) and the same placeholder code locations. Prints JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from samcli.lib.translate.sam_template_validator import SamTemplateValidator
from samcli.yamlhelper import yaml_parse

ROOT = Path(__file__).resolve().parents[1]


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def translate(overrides: dict[str, str], template: Path = ROOT / "template.yaml") -> dict:
    """The deployed form of the template for these parameter values."""
    document = yaml_parse(template.read_text())
    defaults = {name: str(spec.get("Default", "")) for name, spec in document.get("Parameters", {}).items()}
    values = {**defaults, **overrides}
    validator = SamTemplateValidator(
        document,
        _NoManagedPolicies(),
        region="us-east-1",
        parameter_overrides=values,
        language_extensions_enabled=True,
    )
    return yaml_parse(validator.get_translated_template_if_valid())


if __name__ == "__main__":
    pairs = dict(arg.split("=", 1) for arg in sys.argv[1:])
    json.dump(translate(pairs), sys.stdout, indent=1, default=str)
