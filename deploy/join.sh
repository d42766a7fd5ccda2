#!/usr/bin/env bash
# One demo party joins the session that `setup.sh publish` published (used by
# docker-compose.yml's node services and by scripts/cluster.sh):
#
#   join.sh BROKER DIR NAME INPUT [mpc-node join flags…]
#
# NAME is alice, bob or carol (keys and credentials from `setup.sh keys DIR`), INPUT its
# private number. Prints the party's result (JSON) on stdout; progress on stderr; the exit
# status is mpc-node's (0 done, 1 failed naming the phase and the peer).
# mpc-node is $MPC_NODE, else `mpc-node` on PATH.
set -euo pipefail

if [ $# -lt 4 ]; then
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
broker=$1 dir=$2 name=$3 input=$4
shift 4
for f in session.id organizer.did "$name.key.json" "$name.vc.json"; do
    [ -s "$dir/$f" ] || { echo "join.sh: $dir/$f is missing: run setup.sh keys and publish first" >&2; exit 2; }
done
exec "${MPC_NODE:-mpc-node}" join \
    --broker "$broker" \
    --session "$(tr -d '\n' <"$dir/session.id")" \
    --organizer "$(tr -d '\n' <"$dir/organizer.did")" \
    --key "$dir/$name.key.json" \
    --credential "$dir/$name.vc.json" \
    --input "$input" \
    "$@"
