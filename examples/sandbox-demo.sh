#!/usr/bin/env bash
# Start `orga serve` on a free loopback port, then mint a token, decode it and fetch the
# ICE servers against it, as you would against the real API. Stops the sandbox at the end.
set -euo pipefail
ORGA="${ORGA:-$(dirname "$0")/../.venv/bin/orga}"
command -v "$ORGA" >/dev/null || ORGA=orga
export ORGA_API_KEY="sk_orga_ai_demo_$RANDOM$RANDOM$RANDOM"

coproc SERVE { "$ORGA" serve --api-key "$ORGA_API_KEY" --ice-server stun:127.0.0.1:3478 2>/dev/null; }
trap 'kill "$SERVE_PID" 2>/dev/null || true' EXIT
read -r ORGA_BASE_URL <&"${SERVE[0]}"
export ORGA_BASE_URL
echo "sandbox at $ORGA_BASE_URL" >&2

echo "\$ orga token" >&2
TOKEN=$("$ORGA" token)
echo "$TOKEN"
echo "\$ orga token --decode \$TOKEN" >&2
"$ORGA" token --decode "$TOKEN"
echo "\$ orga ice --token \$TOKEN" >&2
"$ORGA" ice --token "$TOKEN"
