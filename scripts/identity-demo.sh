#!/usr/bin/env bash
# The identity flow end to end with the real CLI: an issuer and a party get
# did:key identities, the issuer signs the party a credential, the party
# presents it to a verifier's challenge, and the presentation is verified.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release --locked -p node --bin mpc-node
node=target/release/mpc-node
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

step() { printf '\n== %s\n' "$*" >&2; }
step "issuer and party identities"
"$node" id new --out "$dir/issuer.json"
alice=$("$node" id new --out "$dir/alice.json" | sed -n 's/.*"did": "\(.*\)".*/\1/p')
step "issuer signs a credential for $alice"
"$node" credential issue --key "$dir/issuer.json" --subject "$alice" \
  --type MpcParticipantCredential --claims '{"organization":"Uni A"}' \
  --valid-until 2099-01-01T00:00:00Z > "$dir/vc.json"
cat "$dir/vc.json"
step "party presents it for the verifier's challenge"
"$node" credential present --key "$dir/alice.json" --challenge c-123 \
  --domain broker.example "$dir/vc.json" > "$dir/vp.json"
step "verifier checks the presentation and the credential in it"
"$node" credential verify-presentation --challenge c-123 --domain broker.example "$dir/vp.json"
step "a replay with another challenge is refused (exit 1)"
if "$node" credential verify-presentation --challenge c-999 --domain broker.example "$dir/vp.json" >/dev/null; then
  echo "replay was accepted" >&2; exit 1
fi
