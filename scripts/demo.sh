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
# Processes of an earlier demo run.
# The router drains for a few seconds on SIGTERM: wait until they are gone, so that their ports
# are free.
if [[ -f $work/pids ]]; then
  pids=$(cat "$work/pids")
  kill $pids 2>/dev/null || true
  for _ in $(seq 150); do kill -0 $pids 2>/dev/null || break; sleep 0.2; done
  kill -9 $pids 2>/dev/null || true
  rm -f "$work/pids"
fi
go build -o "$work/plugins/terraform-provider-kagenti" .
go build -o "$work/kagenti-router" ./cmd/kagenti-router
go build -o "$work/kagenti-demo-agent" ./cmd/kagenti-demo-agent
AGENT_ADDR=${DEMO_AGENT_ADDR:-127.0.0.1:18950}
ROUTER_ADDR=${DEMO_ROUTER_ADDR:-127.0.0.1:18960}
"$work/kagenti-demo-agent" -listen "$AGENT_ADDR" >"$work/agent.log" 2>&1 &
echo $! >>"$work/pids"
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
"$tofu_dir/tofu" -chdir="$work" apply -auto-approve -no-color -var "hello_agent_url=http://$AGENT_ADDR"
out() { "$tofu_dir/tofu" -chdir="$work" output -raw "$1"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
# The MCP endpoint answers as a server-sent event stream: the JSON-RPC answer is the last data line.
sse_json() { python3 -c "import json,sys; d=json.loads([l[5:] for l in sys.stdin.read().splitlines() if l.startswith('data:')][-1]); print(eval(sys.argv[1]))" "$1"; }
echo
echo "What the cluster holds now:"
kubectl=$(sandbox build kubernetes | sed -n 's/^kubernetes [^:]*: //p')/kubectl
"$kubectl" get deploy,svc,cm,sa,pdb -n default -l app.kubernetes.io/managed-by=kagenti

# kagenti-router, out of cluster against the sandbox: discovery from the labels the provider
# wrote, Keycloak as the issuer, the router's own client for token exchange.
kubectl_get_secret() { "$kubectl" get secret "$1" -n default -o jsonpath="{.data.$2}" | base64 -d; }
issuer=$("$tofu_dir/tofu" -chdir="$work" output -json keycloak | json 'd["issuer"]')
token_url=$("$tofu_dir/tofu" -chdir="$work" output -json keycloak | json 'd["token_url"]')
router_id=$(out router_client_id)
( umask 077; kubectl_get_secret kagenti-router-keycloak client-secret >"$work/router-secret" )
"$work/kagenti-router" -listen "$ROUTER_ADDR" -public-url "http://$ROUTER_ADDR" -kubeconfig "$KUBECONFIG" -namespaces default \
  -issuer "$issuer" -issuer-ca-file "$KAGENTI_KEYCLOAK_ROOT_CA_FILE" -audience "$router_id" -client-id "$router_id" \
  -client-secret-file "$work/router-secret" >"$work/router.log" 2>&1 &
echo $! >>"$work/pids"
for _ in $(seq 50); do curl -sf "http://$ROUTER_ADDR/readyz" >/dev/null && break; sleep 0.2; done

echo
echo "The agent's card, served by the router (its URL rewritten to the router):"
curl -sf "http://$ROUTER_ADDR/a2a/default/hello-agent/.well-known/agent-card.json" \
  | json '"  name: %s\n  url: %s\n  interfaces: %s\n  skills: %s" % (d["name"], d["url"], [(i["protocolBinding"], i["protocolVersion"], i["url"]) for i in d["supportedInterfaces"]], [s["id"] for s in d["skills"]])'

echo
echo "A call without a token is refused:"
curl -s -o /dev/null -w "  HTTP %{http_code}\n" -X POST "http://$ROUTER_ADDR/a2a/default/hello-agent" \
  -H 'Content-Type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{}}'

echo
echo "A call with the demo client's token (addressed to the router), through the router:"
demo_id=$(out demo_client_id)
demo_secret=$(kubectl_get_secret demo-client-keycloak client-secret)
token=$(curl -sf --cacert "$KAGENTI_KEYCLOAK_ROOT_CA_FILE" "$token_url" -d grant_type=client_credentials --data-urlencode "client_id=$demo_id" \
  --data-urlencode "client_secret=$demo_secret" --data-urlencode "scope=$(out router_audience_scope)" | json 'd["access_token"]')
curl -sf -X POST "http://$ROUTER_ADDR/a2a/default/hello-agent" -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \
  -d '{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"demo-1","role":"ROLE_USER","parts":[{"text":"hello through the router"}]}}}' \
  | json '"  " + d["result"]["message"]["parts"][0]["text"]'

echo
echo "An A2A 0.3 client's message/send to this 1.0 agent, translated by the router both ways:"
curl -sf -X POST "http://$ROUTER_ADDR/a2a/default/hello-agent" -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \
  -d '{"jsonrpc":"2.0","id":2,"method":"message/send","params":{"message":{"kind":"message","messageId":"demo-2","role":"user","parts":[{"kind":"text","text":"hello from an A2A 0.3 client"}]}}}' \
  | json '"  (%s, role %s) " % (d["result"]["kind"], d["result"]["role"]) + d["result"]["parts"][0]["text"]'

echo
echo "The same agent as an MCP tool (tools/call on the router's MCP endpoint):"
curl -sf -X POST "http://$ROUTER_ADDR/mcp/default" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
  -H "Authorization: Bearer $token" \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"hello-agent","arguments":{"text":"hello as an MCP tool"}}}' \
  | sse_json '"  " + d["result"]["content"][0]["text"]'

echo
echo "Router: http://$ROUTER_ADDR (logs $work/router.log); agent logs $work/agent.log"
echo "Sandbox still running: 'make sandbox-status', 'make sandbox-down'. State: $work/terraform.tfstate"
