#!/usr/bin/env bash
# Installs what vigil needs (idempotent), builds it, and replays the footage bundled in fixtures/: one line
# per failure event, then a summary per clip. Events are also written as JSON lines to target/demo/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet -p vigil
mkdir -p target/demo
for clip in normal spaghetti; do
  echo "== vigil replay fixtures/footage/$clip.mkv --interval 10"
  target/release/vigil replay "fixtures/footage/$clip.mkv" --interval 10 --events "target/demo/$clip.events.jsonl"
  echo "   events written to target/demo/$clip.events.jsonl"
done
