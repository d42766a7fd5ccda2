#!/usr/bin/env bash
# The demo session's set-up, shared by docker-compose.yml (its `keys` and `publish` services)
# and scripts/cluster.sh, so both run the same steps:
#
#   setup.sh keys DIR            the broker key (random; shared by every replica), the
#                                organizer's, the issuer's and three parties' keys (fixed demo
#                                seeds, so their DIDs are always the same), one
#                                MpcParticipantCredential per party, and DIR/broker.json: the
#                                replicas' --config naming the key and the trusted organizer
#   setup.sh publish BROKER DIR  a 3-party `sum` manifest for those parties, signed by the
#                                organizer and published through BROKER (a URL); the session
#                                id goes to DIR/session.id
#
# Files in DIR: broker-key.json, broker.json, organizer.did, {organizer,issuer}.key.json,
# {alice,bob,carol}.{key.json,did,vc.json}, manifest.json, publication.json, session.id.
# Keys are kept when they exist (a re-run reuses them); credentials and the session are new.
# The seeds are public: these identities are for demos only, never for real sessions.
#
# mpc-node is $MPC_NODE, else `mpc-node` on PATH. ICE_POLICY=relay publishes the session
# relay-only (every channel through the TURN server); the default is "all".
set -euo pipefail

node=${MPC_NODE:-mpc-node}
PARTIES=(alice bob carol)

usage() {
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
die() { echo "setup.sh: $*" >&2; exit 1; }
step() { echo "setup: $*" >&2; }

# A 32-byte demo seed: one byte repeated (64 hex digits).
seed() { local s=""; for _ in $(seq 32); do s+=$1; done; printf '%s' "$s"; }

# The first string value of field $1 in mpc-node's JSON output.
field() { sed -n "/\"$1\": *\"/{s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p;q;}"; }

# Creates key file $1 from seed byte $2 (random if empty) unless it exists; prints its DID.
key() {
    local file=$1 byte=$2 out
    if [ -e "$file" ]; then
        out=$("$node" id show "$file") || die "cannot read the existing key file $file"
    elif [ -n "$byte" ]; then
        out=$("$node" id new --seed "$(seed "$byte")" --out "$file") || die "cannot create $file"
    else
        out=$("$node" id new --out "$file") || die "cannot create $file"
    fi
    local did
    did=$(field did <<<"$out")
    [ -n "$did" ] || die "no DID in mpc-node's output for $file: $out"
    printf '%s' "$did"
}

# An RFC 3339 UTC timestamp $1 seconds from now.
at() { date -u -d "@$(($(date +%s) + $1))" +%Y-%m-%dT%H:%M:%SZ; }

keys() {
    local dir=$1
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    key "$dir/broker-key.json" "" >/dev/null
    local organizer issuer
    organizer=$(key "$dir/organizer.key.json" c8)
    issuer=$(key "$dir/issuer.key.json" c9)
    printf '%s\n' "$organizer" >"$dir/organizer.did"
    printf '{"key": "%s", "trusted-organizer": ["%s"]}\n' "$dir/broker-key.json" "$organizer" \
        >"$dir/broker.json"
    step "organizer $organizer"
    step "issuer    $issuer"
    local byte=(0a 0b 0c) i=0 name did
    for name in "${PARTIES[@]}"; do
        did=$(key "$dir/$name.key.json" "${byte[$i]}")
        i=$((i + 1))
        printf '%s\n' "$did" >"$dir/$name.did"
        "$node" credential issue --key "$dir/issuer.key.json" --subject "$did" \
            --type MpcParticipantCredential --claims "{\"name\": \"$name\"}" \
            --valid-from "$(at -300)" --valid-until "$(at 86400)" >"$dir/$name.vc.json.tmp" \
            || die "cannot issue $name's credential"
        mv "$dir/$name.vc.json.tmp" "$dir/$name.vc.json"
        step "party     $did ($name, credential $dir/$name.vc.json)"
    done
}

publish() {
    local broker=$1 dir=$2
    local organizer issuer name list=""
    organizer=$(tr -d '\n' <"$dir/organizer.did") || die "no $dir/organizer.did: run 'setup.sh keys $dir' first"
    issuer=$("$node" id show "$dir/issuer.key.json" | field did)
    for name in "${PARTIES[@]}"; do
        [ -s "$dir/$name.did" ] || die "no $dir/$name.did: run 'setup.sh keys $dir' first"
        list+="${list:+, }\"$(tr -d '\n' <"$dir/$name.did")\""
    done
    cat >"$dir/manifest.json" <<EOF
{
  "type": "MpcSessionManifest",
  "title": "Demo: a sum among ${#PARTIES[@]} parties through the broker cluster",
  "organizer": "$organizer",
  "computation": {"program": "sum", "params": {}},
  "admission": {
    "parties": [$list],
    "credentialType": "MpcParticipantCredential",
    "trustedIssuers": ["$issuer"],
    "minParties": ${#PARTIES[@]},
    "maxParties": ${#PARTIES[@]}
  },
  "threshold": 1,
  "joinDeadline": "$(at 600)",
  "expires": "$(at 1800)",
  "ice": "${ICE_POLICY:-all}"
}
EOF
    local out id
    out=$("$node" session publish "$dir/manifest.json" --key "$dir/organizer.key.json" --broker "$broker") \
        || die "publishing through $broker failed (see above)"
    printf '%s\n' "$out" >"$dir/publication.json"
    id=$(field session <<<"$out")
    [ -n "$id" ] || die "no session id in mpc-node's output: $out"
    printf '%s\n' "$id" >"$dir/session.id"
    step "published session $id through $broker"
}

case "${1:-}" in
    keys) [ $# -eq 2 ] || usage; keys "$2" ;;
    publish) [ $# -eq 3 ] || usage; publish "$2" "$3" ;;
    *) usage ;;
esac
