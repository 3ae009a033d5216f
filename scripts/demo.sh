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
# Processes of an earlier demo run (before the router and agent ran in the cluster).
if [[ -f $work/pids ]]; then
  kill $(cat "$work/pids") 2>/dev/null || true
  rm -f "$work/pids"
fi
if [[ -z ${KAGENTI_SPIRE_WORKLOAD_API_CSI_DRIVER:-} ]]; then
  echo "the sandbox in $SANDBOX_DIR has no real node: 'make sandbox-down', then 'make demo' again" >&2
  exit 1
fi
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
# The router, the agent and the tool run from images the sandbox built from this tree and
# imported into its real node.
"$tofu_dir/tofu" -chdir="$work" apply -auto-approve -no-color -var "keycloak_ca_pem=$(cat "$KAGENTI_KEYCLOAK_ROOT_CA_FILE")"
out() { "$tofu_dir/tofu" -chdir="$work" output -raw "$1"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
# The MCP endpoint answers as a server-sent event stream: the JSON-RPC answer is the last data line.
sse_json() { python3 -c "import json,sys; d=json.loads([l[5:] for l in sys.stdin.read().splitlines() if l.startswith('data:')][-1]); print(eval(sys.argv[1]))" "$1"; }
echo
echo "What the cluster holds now (the router, the agent and the tool run as pods on the real node):"
kubectl=$(sandbox build kubernetes | sed -n 's/^kubernetes [^:]*: //p')/kubectl
"$kubectl" get deploy,svc,pod -n default -l app.kubernetes.io/managed-by=kagenti -o wide

# This host is outside the cluster: it reaches the router's Service through kube-proxy's rules,
# at its ClusterIP (the cluster's DNS names, as in the cards, resolve inside it).
ROUTER=http://$("$kubectl" get svc kagenti-router -n default -o jsonpath='{.spec.clusterIP}')
token_url=$("$tofu_dir/tofu" -chdir="$work" output -json keycloak | json 'd["token_url"]')
for _ in $(seq 100); do curl -sf "$ROUTER/a2a/default/hello-agent/.well-known/agent-card.json" >/dev/null && break; sleep 0.2; done

echo
echo "The agent's card, served by the router (its URL rewritten to the router's):"
curl -sf "$ROUTER/a2a/default/hello-agent/.well-known/agent-card.json" \
  | json '"  name: %s\n  url: %s\n  interfaces: %s\n  skills: %s" % (d["name"], d["url"], [(i["protocolBinding"], i["protocolVersion"], i["url"]) for i in d["supportedInterfaces"]], [s["id"] for s in d["skills"]])'

echo
echo "A call without a token is refused:"
curl -s -o /dev/null -w "  HTTP %{http_code}\n" -X POST "$ROUTER/a2a/default/hello-agent" \
  -H 'Content-Type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{}}'

echo
echo "A call with the demo client's token (addressed to the router), through the router. The agent"
echo "asks the weather tool onward, with the token exchanged again (authenticated by its JWT-SVID):"
demo_id=$(out demo_client_id)
demo_secret=$("$kubectl" get secret demo-client-keycloak -n default -o jsonpath='{.data.client-secret}' | base64 -d)
token=$(curl -sf --cacert "$KAGENTI_KEYCLOAK_ROOT_CA_FILE" "$token_url" -d grant_type=client_credentials --data-urlencode "client_id=$demo_id" \
  --data-urlencode "client_secret=$demo_secret" --data-urlencode "scope=$(out router_audience_scope)" | json 'd["access_token"]')
curl -sf -X POST "$ROUTER/a2a/default/hello-agent" -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \
  -d '{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"demo-1","role":"ROLE_USER","parts":[{"text":"hello through the router"}]}}}' \
  | json '"  " + d["result"]["message"]["parts"][0]["text"].replace(" | ", "\n  ")'

echo
echo "An A2A 0.3 client's message/send to this 1.0 agent, translated by the router both ways:"
curl -sf -X POST "$ROUTER/a2a/default/hello-agent" -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \
  -d '{"jsonrpc":"2.0","id":2,"method":"message/send","params":{"message":{"kind":"message","messageId":"demo-2","role":"user","parts":[{"kind":"text","text":"hello from an A2A 0.3 client"}]}}}' \
  | json '"  (%s, role %s) " % (d["result"]["kind"], d["result"]["role"]) + d["result"]["parts"][0]["text"].replace(" | ", "\n  ")'

echo
echo "The same agent as an MCP tool (tools/call on the router's MCP endpoint):"
curl -sf -X POST "$ROUTER/mcp/default" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
  -H "Authorization: Bearer $token" \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"hello-agent","arguments":{"text":"hello as an MCP tool"}}}' \
  | sse_json '"  " + d["result"]["content"][0]["text"].replace(" | ", "\n  ")'

echo
echo "Who may call whom (tofu output access; each resource's access attribute, as a plan shows it):"
"$tofu_dir/tofu" -chdir="$work" output -json access | json '"\n".join("  " + l for l in d)'

echo
echo "Router: $ROUTER ('$kubectl logs -n default deploy/kagenti-router'); agent: '$kubectl logs -n default deploy/hello-agent'"
echo "Sandbox still running: 'make sandbox-status', 'make sandbox-down'. State: $work/terraform.tfstate"
