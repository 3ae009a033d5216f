#!/usr/bin/env bash
# make examples-check: `tofu validate` every example against the provider built from this tree,
# so that an example that no longer matches the schema fails the tests. Snippets under
# examples/resources and examples/data-sources get a required_providers block in a copy.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE_DIR=${CACHE_DIR:-$HOME/.cache/kagenti}
tofu_dir=$(go run ./cmd/kagenti-sandbox -cache-dir "$CACHE_DIR" build tofu | sed -n 's/^tofu [^:]*: //p')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/plugins/terraform-provider-kagenti" .
mkdir -p "$work/mirror"
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
failed=0
n=0
for dir in examples/*/ examples/resources/*/ examples/data-sources/*/; do
  [[ $dir == examples/resources/ || $dir == examples/data-sources/ ]] && continue
  ls "$dir"*.tf >/dev/null 2>&1 || continue
  copy=$work/check/$dir
  mkdir -p "$copy"
  cp "$dir"*.tf "$copy"
  if ! grep -q required_providers "$copy"*.tf; then
    printf 'terraform {\n  required_providers {\n    kagenti = { source = "kagenti/kagenti" }\n  }\n}\n' >"$copy/versions.tf"
  fi
  n=$((n + 1))
  if out=$("$tofu_dir/tofu" -chdir="$copy" validate -no-color 2>&1); then
    echo "ok   $dir"
  else
    echo "FAIL $dir"; echo "$out" | grep -v '^$' | sed 's/^/     /'
    failed=$((failed + 1))
  fi
done
echo "examples: $((n - failed)) valid, $failed invalid"
exit $((failed > 0))
