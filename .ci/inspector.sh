#!/usr/bin/env bash
# The official MCP Inspector, as an independent client, against an installed server.
#
#   bash .ci/inspector.sh PATH/TO/mcp-profiles
#
# Installs @modelcontextprotocol/inspector (pinned: 0.15.0 is the last release that runs on
# Node 20) from the npm registry into a cache directory, then drives `mcp-profiles serve`
# over stdio with the Inspector's CLI mode, one process per call, on a fresh database.
# The Inspector exits 0 when a tool call fails, so every answer is checked as JSON: a call
# that should succeed must not carry "isError": true and must contain what it should.
set -euo pipefail

exe=${1:?usage: bash .ci/inspector.sh PATH/TO/mcp-profiles}
[ -x "$exe" ] || { echo "inspector.sh: $exe is not an executable" >&2; exit 2; }
command -v npm >/dev/null || { echo "inspector.sh: npm (Node.js) is needed" >&2; exit 2; }

version=0.15.0
cache=${MCP_PROFILES_CI_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/mcp-profiles-ci}/inspector-$version
inspector=$cache/node_modules/.bin/mcp-inspector
started=$SECONDS

if [ ! -x "$inspector" ]; then
  # Install beside the cache and rename it into place, so an interrupted install is never reused.
  mkdir -p "$(dirname "$cache")"
  staging=$(mktemp -d "$cache.XXXXXX")
  for attempt in 1 2; do # one retry for a registry hiccup
    if timeout 300 npm install --prefix "$staging" --no-audit --no-fund --loglevel=error \
      "@modelcontextprotocol/inspector@$version" >/dev/null; then
      break
    fi
    [ "$attempt" = 2 ] && { rm -rf "$staging"; echo "inspector.sh: npm install failed" >&2; exit 1; }
  done
  mv -T "$staging" "$cache" 2>/dev/null || rm -rf "$staging" # another run got there first
  echo "inspector $version installed in $cache ($((SECONDS - started)) s)"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
db=$out/inspector.sqlite3
calls=0

# inspect NAME ARGS...: one Inspector call against a fresh server; the answer goes to NAME.json.
inspect() {
  local name=$1
  shift
  calls=$((calls + 1))
  if ! timeout 120 "$inspector" --cli -e "MCP_PROFILES_DB=$db" "$exe" serve "$@" \
    >"$out/$name.json" 2>"$out/$name.err" </dev/null; then
    echo "FAIL $name: the inspector exited non-zero" >&2
    cat "$out/$name.json" "$out/$name.err" >&2
    exit 1
  fi
}

# check NAME ok|error PYTHON-EXPRESSION: r is the parsed answer; the expression names what
# to print on success (a string) or is falsy on failure.
check() {
  python3 - "$out/$1.json" "$1" "$2" "$3" <<'PY'
import json, sys

path, name, want, expr = sys.argv[1:5]
raw = open(path, encoding="utf-8").read()
try:
    r = json.loads(raw)
except json.JSONDecodeError:
    sys.exit(f"FAIL {name}: the answer is not JSON:\n{raw[:2000]}")
failed = r.get("isError") is True
if failed != (want == "error"):
    sys.exit(f"FAIL {name}: expected {'an error' if want == 'error' else 'success'}, got:\n{raw[:2000]}")
def text(r):
    return "".join(c.get("text", "") for c in r.get("content", []) if c.get("type") == "text")
try:
    note = eval(expr, {"r": r, "json": json, "text": text})
except Exception as e:  # a missing key is a failed expectation
    note = None
    error = f"{type(e).__name__}: {e}"
else:
    error = "unexpected content"
if not note:
    sys.exit(f"FAIL {name}: {error} ({expr})\n{raw[:2000]}")
print(f"ok   {name:28} {note}")
PY
}

tools="update_profile upsert_profile_from_data get_profile list_profiles delete_profile profile_history revert_profile get_job show_profile list_data forget_data"

inspect tools --method tools/list
check tools ok "sorted(t['name'] for t in r['tools']) == sorted('$tools'.split()) and [t['_meta']['ui']['resourceUri'] for t in r['tools'] if t['name'] == 'show_profile'] == ['ui://mcp-profiles/profile-card.html'] and '11 tools, named as in the contract; show_profile links the card'"

inspect templates --method resources/templates/list
check templates ok "{'profile://{ref}', 'profiles://index{?kind,tag,limit,cursor}'} <= {t['uriTemplate'] for t in r['resourceTemplates']} and 'profile://{ref}, profiles://index{?kind,tag,limit,cursor}'"

inspect prompts --method prompts/list
check prompts ok "{'personalize', 'review_profile', 'remember'} <= {p['name'] for p in r['prompts']} and ', '.join(p['name'] for p in r['prompts'])"

inspect update_profile --method tools/call --tool-name update_profile \
  --tool-arg profile=ada create=true 'patch={"name": "Ada Lovelace", "attributes": {"work.role": "mathematician"}}'
check update_profile ok "r['structuredContent']['profile']['version'] == 1 and r['structuredContent']['changed'] == ['name', 'attributes.work.role'] and 'created ada, version 1'"

inspect get_profile --method tools/call --tool-name get_profile --tool-arg profile=ada
check get_profile ok "r['structuredContent']['name'] == 'Ada Lovelace' and r['structuredContent']['attributes']['work.role']['value'] == 'mathematician' and 'name and work.role read back'"

inspect resources --method resources/list
check resources ok "{'profile://ada', 'connections://index'} <= {x['uri'] for x in r['resources']} and 'profile://ada is listed'"

inspect read_profile --method resources/read --uri profile://ada
check read_profile ok "json.loads(r['contents'][0]['text'])['attributes']['work.role']['value'] == 'mathematician' and r['contents'][0]['mimeType'] == 'application/json' and 'profile://ada is the JSON document'"

inspect card --method resources/read --uri ui://mcp-profiles/profile-card.html
check card ok "r['contents'][0]['mimeType'] == 'text/html;profile=mcp-app' and r['contents'][0]['text'].lower().startswith('<!doctype html>') and 'the card is an MCP App resource'"

inspect personalize --method prompts/get --prompt-name personalize --prompt-args user=ada
check personalize ok "'Ada Lovelace' in r['messages'][0]['content']['text'] and 'mathematician' in r['messages'][0]['content']['text'] and 'rendered with the profile'"

inspect upsert_pending --method tools/call --tool-name upsert_profile_from_data \
  --tool-arg profile=ada 'data=I moved to Lisbon last spring.' 'input_type=chat history'
check upsert_pending ok "r['structuredContent']['status'] == 'pending' and 'no LLM configured: data kept, status pending'"

inspect not_found --method tools/call --tool-name get_profile --tool-arg profile=nobody
check not_found error "text(r).startswith('not_found:') and 'isError: ' + text(r)"

# The README's debugging line: the Inspector reading a Claude Desktop configuration file
# (examples/claude_desktop_config.json with this executable, this database and no key).
python3 - "$(dirname "$0")/../examples/claude_desktop_config.json" "$exe" "$db" >"$out/desktop.json" <<'PY'
import json, sys

path, exe, db = sys.argv[1:4]
config = json.load(open(path, encoding="utf-8"))
server = config["mcpServers"]["profiles"]
server["command"], server["env"] = exe, {"MCP_PROFILES_DB": db}
json.dump(config, sys.stdout)
PY
calls=$((calls + 1))
timeout 120 "$inspector" --cli --config "$out/desktop.json" --server profiles --method resources/read \
  --uri profile://ada >"$out/desktop_config.json" 2>"$out/desktop_config.err" </dev/null ||
  { echo "FAIL desktop_config: the inspector exited non-zero" >&2; cat "$out"/desktop_config.* >&2; exit 1; }
check desktop_config ok "'Ada Lovelace' in r['contents'][0]['text'] and 'claude_desktop_config.json starts the same server'"

echo "inspector: $calls calls passed in $((SECONDS - started)) s"
