'use strict';
// A tiny HTTP app for the Cluster demo: each answer says which process (and which instance) served it.
// Run as a cluster: Start-ClusterApp ./examples/hello/app.js -Name hello -Instances 0
const http = require('http');

const port = Number(process.env.PORT || 3000);
const instance = process.env.NODE_APP_INSTANCE; // set by Cluster: 0, 1, … per instance

const server = http.createServer((req, res) => {
  const body = JSON.stringify({ pid: process.pid, instance, message: instance === undefined ? 'Hello' : `Hello from instance ${instance}` });
  // Connection: close, so that every request of the demo is a new connection and can reach another instance.
  res.writeHead(200, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    'Connection': 'close',
  });
  res.end(body);
});

server.listen(port, '127.0.0.1');

// Graceful reload: Cluster sends 'shutdown'; stop accepting, finish open requests, then exit.
process.on('message', (message) => {
  if (message === 'shutdown') {
    server.close(() => process.exit(0));
  }
});
