#!/usr/bin/env bash
# Writes a canned store of runs with the `keel` binary given as $1 into $2/store,
# with the scripts it used in $2/scripts. Used once per log format version (see
# README.md here): the store is committed and every later build must open, list,
# show, replay and continue its runs (tests/histories.rs).
#
# Runs it records (named in $2/runs.txt):
#   demo         the offline demo (write + exec, approved)
#   fork         the demo forked at 7 and continued to the end
#   crash        approvals, a kill -9 while a command ran, recovery (reported interrupted),
#                a denial with a note, completion
#   blobs        a command whose 30 KB output lives in the blob space; "always" answered
#   waiting      left waiting for an approval
#   interrupted  killed while its command ran, not yet recovered
#   cancelled    cancelled while waiting
#   failed       failed: the provider answered 401
set -euo pipefail
keel=$(realpath "$1")
out=$(realpath -m "$2")
base=/tmp/keel-canned-history
rm -rf "$base" "$out"
# Runs record their definition, script paths included: the scripts live at a fixed
# path under $base, which tests/histories' test recreates before continuing runs.
mkdir -p "$base/ws" "$base/workspace" "$base/scripts" "$out/scripts"
cd "$base"
export KEEL_STORE="$base/store"
unset ANTHROPIC_API_KEY OPENAI_API_KEY

# ---- demo, and a fork of it continued to the end
"$keel" demo --approve-all --dir "$base/demo" > /dev/null
cp "$base/demo/demo-session.json" "$out/scripts/demo-session.json"
demo=$("$keel" runs --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
# Runs carry their definition (since format 2's second folder): fork and resume need no flags.
fork=$("$keel" fork "$demo" --at 7 | grep -oE '[0-9a-f]{32}' | tail -1)
"$keel" resume "$fork" --approve-all > /dev/null

ws="$base/ws"
script() { cat > "$base/scripts/$1.json"; cp "$base/scripts/$1.json" "$out/scripts/$1.json"; }
approve() { "$keel" approve "$@"; }

# ---- crash: approvals, kill -9 mid-command, recovery, denial, completion
script crash <<'J'
{"mode": "by_turn", "model": "claude-sonnet-4-5", "responses": [
 {"content": [{"type": "text", "text": "I'll write the notes first."},
   {"type": "tool_use", "id": "toolu_c0", "name": "write", "input": {"path": "notes.txt", "content": "one\ntwo\n"}}],
  "usage": {"input_tokens": 900, "output_tokens": 30}},
 {"expect": {"tool_results": ["write"]},
  "content": [{"type": "thinking", "thinking": "Now a slow command.", "signature": "sig-1"},
   {"type": "text", "text": "Now a slow step."},
   {"type": "tool_use", "id": "toolu_c1", "name": "exec", "input": {"command": "sleep 30; echo slept"}}],
  "usage": {"input_tokens": 120, "output_tokens": 25, "cache_read_input_tokens": 800}},
 {"expect": {"tool_results": ["exec"], "tool_error": true},
  "content": [{"type": "text", "text": "It was interrupted. I'll remove the notes."},
   {"type": "tool_use", "id": "toolu_c2", "name": "exec", "input": {"command": "rm notes.txt"}}],
  "usage": {"input_tokens": 150, "output_tokens": 20}},
 {"expect": {"tool_results": ["exec"], "tool_error": true, "contains": "keep the notes"},
  "content": [{"type": "text", "text": "Understood: the notes stay."}],
  "usage": {"input_tokens": 170, "output_tokens": 10}}
]}
J
run_agent() { # prompt, script, extra flags...
  local prompt=$1 s=$2; shift 2
  "$keel" run coding_agent "$prompt" --script "$base/scripts/$s.json" --model claude-sonnet-4-5 --workspace "$ws" "$@"
}
set +e
run_agent "Write notes, then wait." crash > /dev/null 2>&1; test $? -eq 3 || exit 1
set -e
crash=$("$keel" runs --json | python3 -c 'import json,sys; print([r["id"] for r in json.load(sys.stdin) if r["title"].startswith("Write notes")][0])')
approve "$crash" > /dev/null
set +e
"$keel" resume "$crash" > /dev/null 2>&1; test $? -eq 3 || exit 1
set -e
approve "$crash" > /dev/null
"$keel" resume "$crash" > /dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do pgrep -f "sleep 30; echo slept" > /dev/null && break; sleep 0.1; done
sleep 0.3
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
pkill -9 -f "sleep 30; echo slept" || true
sleep 0.2
set +e
"$keel" resume "$crash" > /dev/null 2>&1; test $? -eq 3 || exit 1
set -e
approve "$crash" --deny --note "No: keep the notes." > /dev/null
"$keel" resume "$crash" > /dev/null

# ---- blobs: 30 KB of output, "always" answered
script blobs <<'J'
{"mode": "by_turn", "model": "claude-sonnet-4-5", "responses": [
 {"content": [{"type": "tool_use", "id": "toolu_b0", "name": "exec", "input": {"command": "seq 1 20000"}}],
  "usage": {"input_tokens": 500, "output_tokens": 12}},
 {"expect": {"tool_results": ["exec"]},
  "content": [{"type": "tool_use", "id": "toolu_b1", "name": "exec", "input": {"command": "seq 1 20000"}}],
  "usage": {"input_tokens": 9000, "output_tokens": 12}},
 {"expect": {"tool_results": ["exec"]},
  "content": [{"type": "text", "text": "Counted twice."}],
  "usage": {"input_tokens": 18000, "output_tokens": 5}}
]}
J
set +e
run_agent "Count to 20000." blobs > /dev/null 2>&1; test $? -eq 3 || exit 1
set -e
blobs=$("$keel" runs --json | python3 -c 'import json,sys; print([r["id"] for r in json.load(sys.stdin) if r["title"].startswith("Count")][0])')
approve "$blobs" --always > /dev/null
"$keel" resume "$blobs" > /dev/null

# ---- waiting: left at an approval
script waiting <<'J'
{"mode": "by_turn", "model": "claude-sonnet-4-5", "responses": [
 {"content": [{"type": "text", "text": "Listing."},
   {"type": "tool_use", "id": "toolu_w0", "name": "exec", "input": {"command": "ls"}}],
  "usage": {"input_tokens": 400, "output_tokens": 9}},
 {"expect": {"tool_results": ["exec"]},
  "content": [{"type": "text", "text": "Listed."}],
  "usage": {"input_tokens": 450, "output_tokens": 3}}
]}
J
set +e
run_agent "List the workspace." waiting > /dev/null 2>&1; test $? -eq 3 || exit 1
set -e

# ---- interrupted: killed while its command ran
script interrupted <<'J'
{"mode": "by_turn", "model": "claude-sonnet-4-5", "responses": [
 {"content": [{"type": "tool_use", "id": "toolu_i0", "name": "exec", "input": {"command": "sleep 31; echo late"}}],
  "usage": {"input_tokens": 400, "output_tokens": 9}},
 {"expect": {"tool_results": ["exec"]},
  "content": [{"type": "text", "text": "Noted."}],
  "usage": {"input_tokens": 450, "output_tokens": 3}}
]}
J
"$keel" run coding_agent "Sleep a while." --script "$base/scripts/interrupted.json" --model claude-sonnet-4-5 \
  --workspace "$ws" --approve-all > /dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do pgrep -f "sleep 31; echo late" > /dev/null && break; sleep 0.1; done
sleep 0.3
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
pkill -9 -f "sleep 31; echo late" || true
sleep 0.2

# ---- cancelled while waiting
set +e
run_agent "List, then be cancelled." waiting > /dev/null 2>&1; test $? -eq 3 || exit 1
set -e
cancelled=$("$keel" runs --json | python3 -c 'import json,sys; print([r["id"] for r in json.load(sys.stdin) if r["title"].startswith("List, then")][0])')
"$keel" cancel "$cancelled" > /dev/null

# ---- failed: the provider refuses
script failed <<'J'
{"responses": [{"error": {"status": 401, "type": "authentication_error", "message": "invalid x-api-key"}}]}
J
set +e
run_agent "Fail." failed > /dev/null 2>&1; test $? -eq 1 || exit 1
set -e

"$keel" runs --json | python3 -c '
import json, sys
names = {"Write notes": "crash", "Count": "blobs", "List the": "waiting", "Sleep": "interrupted",
         "List, then": "cancelled", "Fail": "failed"}
rows = json.load(sys.stdin)
for r in rows:
    s = r
    name = next((n for p, n in names.items() if s["title"].startswith(p)), None)
    if name is None:
        name = "fork" if s.get("parent") else "demo"
    print(name, r["id"], r["status"], r["events"])
' | sort > "$out/runs.txt"
cp -r "$base/store" "$out/store"
rm -f "$out/store/keel.sock" "$out/store/LOCK" "$out/store/wal/spare.zeroed"
echo "wrote $out"; cat "$out/runs.txt"
