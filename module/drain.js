'use strict';
// Loaded into cluster workers with --require. It changes nothing until an HTTP(S) server starts closing
// (a retiring worker: the cluster disconnect closes its servers). From then on:
//   - every response still to be written says 'Connection: close', so keep-alive clients move to a new
//     connection (served by another worker) after the answer instead of sending into a closed socket;
//   - idle keep-alive connections are closed only after a short grace, in which a request already on its
//     way is still answered.
// Node's own close() drops idle connections at once, and a request racing that drop is reset.

const http = require('node:http');
const https = require('node:https');

const closing = Symbol('cluster.closing');
const graceMs = Number(process.env.CLUSTER_DRAIN_GRACE_MS) > 0 ? Number(process.env.CLUSTER_DRAIN_GRACE_MS) : 1000;

function patchServer(ServerClass) {
  const originalClose = ServerClass.prototype.close;
  ServerClass.prototype.close = function close(...args) {
    const firstClose = !this[closing];
    this[closing] = true;
    // Node's close() calls closeIdleConnections(); hold that back for the grace period. Every call holds it:
    // a server is often closed twice (by the app on 'shutdown' and by the cluster disconnect), and the
    // second close must not cut the grace short.
    const closeIdleNow = this.closeIdleConnections;
    this.closeIdleConnections = function holdIdleConnections() {};
    try {
      return originalClose.apply(this, args);
    } finally {
      delete this.closeIdleConnections;
      if (firstClose && typeof closeIdleNow === 'function') {
        setTimeout(() => this.closeIdleConnections(), graceMs).unref();
      }
    }
  };
}

const originalWriteHead = http.ServerResponse.prototype.writeHead;
http.ServerResponse.prototype.writeHead = function writeHead(...args) {
  const server = this.socket && this.socket.server;
  if (server && server[closing] && !this.headersSent) {
    this.shouldKeepAlive = false;
    if (!this.hasHeader('connection')) this.setHeader('Connection', 'close');
  }
  return originalWriteHead.apply(this, args);
};

patchServer(http.Server);
if (https.Server !== http.Server) patchServer(https.Server);
