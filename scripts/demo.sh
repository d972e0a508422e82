#!/usr/bin/env bash
# One command on a fresh Debian machine: installs what weir needs, then runs weir's main job
# on the embedded demo (examples/demo): the offline analysis, then the lab — emulated nodes and
# pods enforced by nftables — probed with real packets and compared cell by cell with the
# analyzer, with the flow dashboard left running.
#
#   bash scripts/demo.sh               # as root (no sudo needed, none in a fresh container)
#   sudo bash scripts/demo.sh          # the same, from a user account
#   npx weir lab down                  # when done (as root)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
  echo "weir's lab builds network namespaces and nftables tables: run this as root (as root: bash scripts/demo.sh; from a user account: sudo bash scripts/demo.sh)." >&2
  exit 2
fi

PACKAGES=(nftables iproute2 conntrack iperf3)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq </dev/null
  apt-get install -y -qq "${missing[@]}" </dev/null >/dev/null
fi
[ -d node_modules ] || npm ci --no-audit --no-fund </dev/null
# npm ci builds the dashboard (prepare); an older install may predate that.
[ -f src/ui/web/dist/index.html ] || npm run build:ui </dev/null

echo "==> weir analyze examples/demo (offline: who can reach whom)"
npx weir analyze examples/demo | head -n 25
echo "    … ($(npx weir analyze examples/demo 2>/dev/null | wc -l) connection lines in all)"

echo "==> weir lint examples/demo"
npx weir lint examples/demo || true

echo "==> weir lab up examples/demo (2 nodes, one netns per pod, nftables agents, flow server)"
npx weir lab down >/dev/null 2>&1 || true
npx weir lab up examples/demo --alerts examples/alerts.yaml

echo "==> weir lab probe --compare (real TCP/UDP packets vs the analyzer; prints only disagreeing cells and a summary)"
npx weir lab probe --compare

echo "==> weir lab probe --matrix: who reaches data/postgres-0 on 5432/TCP (. reachable, X not)"
npx weir lab probe --matrix --port 5432/TCP --to data/postgres-0

echo "==> weir explain: why checkout may not reach postgres"
npx weir explain examples/demo --from shop/checkout --to data/postgres --port 5432/TCP || true

echo
echo "The lab is up. Dashboard and API: see the URL printed by 'lab up' above (default http://127.0.0.1:7680/)."
echo "Try (as root): npx weir flows --verdict DROPPED, npx weir lab status, and finally npx weir lab down"
