#!/usr/bin/env bash
# Offline checks of template.yaml, run by `make test`: cfn-lint (through `sam validate --lint` and
# directly) on the cheap profile (the defaults), the production profile and the bring-your-own path,
# the real SAM transform of each, and a container-free arm64 `sam build` whose
# layers must hold the packages that the handlers import. Needs network only for PyPI (sam build's pip).
set -euo pipefail
cd "$(dirname "$0")/.."
# sam build looks for python3.12 on PATH; pyenv shims do not resolve it, the project venv does.
export PATH="$PWD/.venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0
SAM=.venv-sam/bin/sam
start=$SECONDS

work=$(mktemp -d)
declare -A pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Variants whose parameter defaults take the other branch of every condition. `sam validate` has no
# --parameter-overrides, and it translates with the defaults.
set_default() { # file parameter old new
  sed -i "/^  $2:\$/,/Default:/ s|Default: $3\$|Default: $4|" "$1"
  grep -A3 "^  $2:\$" "$1" | grep -q "Default: $4\$" || {
    echo "check-template: cannot set the default of $2 in $1; did the Parameters block change?" >&2
    exit 1
  }
}
# cheap (the defaults: the stack's Aurora pausing to 0 ACU, direct connections, a NAT instance, Cognito)
cp template.yaml "$work/auth-jwt.yaml"
# production: RDS Proxy with IAM auth, a NAT gateway, VPC endpoints (Bedrock's too), an external issuer
cp template.yaml "$work/production.yaml"
set_default "$work/production.yaml" Profile cheap production
set_default "$work/production.yaml" BedrockModels '""' '"anthropic.claude-3-5-haiku-20241022-v1:0"'
set_default "$work/production.yaml" JwtIssuer '""' '"https://issuer.example.com"'
set_default "$work/production.yaml" JwtAudience '""' '"client-1"'
# bring your own: an existing database secret and VPC, no authorizer, access logs
cp template.yaml "$work/auth-none.yaml"
set_default "$work/auth-none.yaml" AuthMode jwt none
set_default "$work/auth-none.yaml" DatabaseSecretArn '""' '"arn:aws:secretsmanager:us-east-1:123456789012:secret:signoff/db-AbCdEf"'
set_default "$work/auth-none.yaml" OpenAISecretArn '""' '"arn:aws:secretsmanager:us-east-1:123456789012:secret:signoff/openai-AbCdEf"'
set_default "$work/auth-none.yaml" DatabaseHost '""' '"db.example.internal"'
set_default "$work/auth-none.yaml" VpcSubnetIds '""' '"subnet-0a,subnet-0b"'
set_default "$work/auth-none.yaml" VpcSecurityGroupIds '""' '"sg-0a"'
set_default "$work/auth-none.yaml" EnableAccessLogs '"false"' '"true"'

# The cheap checks run in the background while sam build (the slow part) runs in the foreground.
# The SAM transform check runs AWS::LanguageExtensions locally, as CloudFormation does on deploy;
# it makes no AWS call, the region only has to be set.
background() { # name command...
  local name=$1
  shift
  "$@" >"$work/$name.log" 2>&1 &
  pids[$name]=$!
}
background sam-lint "$SAM" validate --lint
background cfn-lint .venv/bin/cfn-lint template.yaml "$work/production.yaml" "$work/auth-none.yaml"
background transform-jwt "$SAM" validate --region us-east-1 --language-extensions -t "$work/auth-jwt.yaml"
background transform-production "$SAM" validate --region us-east-1 --language-extensions -t "$work/production.yaml"
background transform-none "$SAM" validate --region us-east-1 --language-extensions -t "$work/auth-none.yaml"

# --no-cached: samconfig.toml's `cached` would keep dependencies in the checkout's .aws-sam/deps.
build="$work/build"
if ! "$SAM" build --language-extensions --no-cached --build-dir "$build" --cache-dir "$work/cache" --parallel \
  >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  echo "check-template: sam build failed" >&2
  exit 1
fi

failed=0
for name in sam-lint cfn-lint transform-jwt transform-production transform-none; do
  if ! wait "${pids[$name]}"; then
    cat "$work/$name.log" >&2
    echo "check-template: $name failed" >&2
    failed=1
  fi
  unset "pids[$name]"
done
[ "$failed" = 0 ] || exit 1

# Lambda puts each layer's python/ on sys.path: the packages must sit right under it, and the
# compiled dependencies must be the arm64 builds (an x86_64 wheel fails only at import time).
required=(
  SignoffLayer/python/signoff/__init__.py
  AgentsLayer/python/catalog/__init__.py
  StartRunFunction/app.py
  ContinueRunFunction/app.py
  ReadRunsFunction/app.py
  MigrateFunction/app.py
)
for path in "${required[@]}"; do
  [ -f "$build/$path" ] || { echo "check-template: $path missing from the build" >&2; exit 1; }
done
for module in pydantic_core/_pydantic_core psycopg_binary/_psycopg jiter/jiter; do
  compgen -G "$build/SignoffLayer/python/$module.cpython-312-aarch64-linux-gnu.so" >/dev/null || {
    echo "check-template: no arm64 build of $module in SignoffLayer" >&2
    exit 1
  }
done

# layers/signoff/Makefile: nothing that Lambda's runtime provides, no dev-only code, bytecode shipped.
for path in botocore boto3 urllib3 signoff_dev signoff/local; do
  [ ! -e "$build/SignoffLayer/python/$path" ] || {
    echo "check-template: SignoffLayer ships $path (the runtime provides it, or it is dev-only)" >&2
    exit 1
  }
done
[ -f "$build/SignoffLayer/python/signoff/__pycache__/state.cpython-312.pyc" ] || {
  echo "check-template: SignoffLayer ships no Python 3.12 bytecode" >&2
  exit 1
}

sizes=$(cd "$build" && du -sh -- */ | awk '{sub("/$", "", $2); printf "%s %s, ", $2, $1}')
echo "check-template: OK in $((SECONDS - start))s (cfn-lint cheap+production+bring-your-own, SAM transform of each, arm64 build: ${sizes%, })"
