// PeerJS server (npm `peer`) for the broker's load benchmark
// (broker/benches/load.rs): `node server.js PORT`, loopback only.
// Clients connect to ws://127.0.0.1:PORT/peerjs?key=peerjs&id=ID&token=T.
"use strict";

const { PeerServer } = require("peer");

const port = Number(process.argv[2] || 9000);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`usage: node server.js PORT (got ${process.argv[2]})`);
  process.exit(2);
}

PeerServer(
  {
    host: "127.0.0.1",
    port,
    path: "/",
    allow_discovery: false,
    concurrent_limit: 10000,
  },
  () => console.log(`peerjs listening on 127.0.0.1:${port}`),
);

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => process.exit(0));
}
