#!/usr/bin/env bash
# make demo: start the sandbox (unless one runs), build the provider, and apply
# examples/quickstart with OpenTofu against it. The sandbox is left running for you to explore.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE_DIR=${CACHE_DIR:-$HOME/.cache/kagenti}
SANDBOX_DIR=${SANDBOX_DIR:-/tmp/kagenti-sandbox}
sandbox() { go run ./cmd/kagenti-sandbox -cache-dir "$CACHE_DIR" -dir "$SANDBOX_DIR" "$@"; }

tofu_dir=$(sandbox build tofu | sed -n 's/^tofu [^:]*: //p')
if ! sandbox status >/dev/null 2>&1; then
  sandbox up
fi
# shellcheck disable=SC1091
source "$SANDBOX_DIR/env"

work=$SANDBOX_DIR/demo
mkdir -p "$work/plugins" "$work/mirror"
go build -o "$work/plugins/terraform-provider-kagenti" .
# No registry here: dev_overrides points tofu at the provider just built, and an empty
# filesystem mirror keeps it from looking anywhere else.
cat >"$work/tofurc" <<CFG
provider_installation {
  dev_overrides {
    "kagenti/kagenti" = "$work/plugins"
  }
  filesystem_mirror {
    path    = "$work/mirror"
    include = ["*/*/*"]
  }
}
CFG
export TF_CLI_CONFIG_FILE=$work/tofurc
cp examples/quickstart/*.tf "$work/"
"$tofu_dir/tofu" -chdir="$work" apply -auto-approve -no-color
echo
echo "What the cluster holds now:"
kubectl=$(sandbox build kubernetes | sed -n 's/^kubernetes [^:]*: //p')/kubectl
"$kubectl" get deploy,svc,cm,sa,pdb -n default -l app.kubernetes.io/managed-by=kagenti
echo
echo "Sandbox still running: 'make sandbox-status', 'make sandbox-down'. State: $work/terraform.tfstate"
