'use strict';
// Loaded into cluster workers with --require. It changes nothing until an HTTP(S) server starts closing
// (a retiring worker: the cluster disconnect closes its servers). From then on:
//   - every response still to be written says 'Connection: close', so keep-alive clients move to a new
//     connection (served by another worker) after the answer instead of sending into a closed socket;
//   - idle keep-alive connections are closed only after a short grace, in which a request already on its
//     way is still answered.
// Node's own close() drops idle connections at once, and a request racing that drop is reset.
// Long-lived connections would keep a closing server open until the worker is killed, and then be dropped
// abruptly. So, once their server closes:
//   - HTTP/2 sessions are told GOAWAY at once (a notice: no new streams, please), and closed after the grace
//     (a final GOAWAY: the streams in flight finish, then the session ends);
//   - WebSocket connections (upgrades made through an HTTP server) get a close frame, 1001 'going away',
//     and their socket a FIN once the client has answered it;
//   - sockets of a plain TCP (or TLS) server get a FIN.
// A WebSocket or TCP connection is wound down at a boundary: just after the app's next write to it (an
// answer to what the client sent), or after the grace when the app writes nothing to it. A client that
// waits for each answer before it sends again loses nothing that way, and a busy connection moves on at
// once. When every connection is gone the server has closed, the cluster disconnect completes and the
// worker exits.

const http = require('node:http');
const https = require('node:https');
const http2 = require('node:http2');
const net = require('node:net');
const tls = require('node:tls');

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
      if (firstClose) windDownWebSockets(this);
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

// ---- Long-lived connections: HTTP/2 sessions, WebSocket upgrades, plain TCP sockets ----

const tracked = Symbol('cluster.tracked'); // server -> Set of its sessions (HTTP/2) or sockets (WebSocket, TCP)
const windingDown = Symbol('cluster.windingDown');
const WEBSOCKET_GOING_AWAY = Buffer.from([0x88, 0x02, 0x03, 0xe9]); // FIN + close, 2 bytes: 1001
const HTTP2_NO_ERROR = 0;
const HTTP2_LAST_STREAM = 2 ** 31 - 1;

const Http2Server = Object.getPrototypeOf(http2.createServer()).constructor;
const Http2SecureServer = Object.getPrototypeOf(http2.createSecureServer()).constructor;

function isHttp(server) {
  return server instanceof http.Server || server instanceof https.Server;
}

function isHttp2(server) {
  return server instanceof Http2Server || server instanceof Http2SecureServer;
}

function track(server, connection) {
  let set = server[tracked];
  if (!set) {
    set = new Set();
    server[tracked] = set;
  }
  set.add(connection);
  connection.once('close', () => set.delete(connection));
}

// Watches servers' events for the connections to wind down later. Only events of interest are looked at.
function watchConnections() {
  const emit = net.Server.prototype.emit;
  net.Server.prototype.emit = function watchedEmit(event, ...args) {
    if (event === 'upgrade') {
      const [request, socket] = args;
      if (isHttp(this) && String(request.headers.upgrade).toLowerCase() === 'websocket') track(this, socket);
    } else if (event === 'session') {
      if (isHttp2(this)) track(this, args[0]);
    } else if (event === 'connection' || event === 'secureConnection') {
      if (isPlainTcp(this, event)) track(this, args[0]);
    }
    return emit.call(this, event, ...args);
  };
}

// A TCP server of the app's own: not HTTP, not HTTP/2. A TLS server's sockets are its secure ones.
function isPlainTcp(server, event) {
  if (isHttp(server) || isHttp2(server)) return false;
  return server instanceof tls.Server ? event === 'secureConnection' : event === 'connection';
}

// Calls wind() on the socket just after the app's next write to it (once the write in progress, which may be
// a header and a payload, is done), or after the grace when the app writes nothing.
function atBoundary(socket, wind) {
  if (socket.destroyed || socket[windingDown]) return;
  socket[windingDown] = true;
  socket.on('error', () => {}); // a write racing the end must not take the worker down
  let done = false;
  const once = () => {
    if (done || socket.destroyed) return;
    done = true;
    socket.write = write;
    clearTimeout(timer);
    wind();
  };
  const write = socket.write;
  socket.write = function writeThenWind(...args) {
    // Corked until the wind-down is written, so that the answer and what follows it leave together.
    if (!done) socket.cork();
    const result = write.apply(this, args);
    process.nextTick(() => {
      once();
      socket.uncork();
    });
    return result;
  };
  const timer = setTimeout(once, graceMs);
  timer.unref();
}

// The socket is destroyed if the client has not closed its side a grace after it was told to.
function endSocket(socket) {
  socket.end();
  setTimeout(() => socket.destroy(), graceMs).unref();
}

function windDownWebSockets(server) {
  for (const socket of server[tracked] || []) {
    atBoundary(socket, () => {
      socket.write(WEBSOCKET_GOING_AWAY);
      // The client answers with its own close frame and ends the connection; the app's WebSocket library,
      // when it sees that close frame, ends its side too. A client that does neither is ended here.
      setTimeout(() => endSocket(socket), graceMs).unref();
    });
  }
}

// Keeps the worker running while the server's HTTP/2 sessions are open: their sockets do not, and a worker
// whose server has closed (its IPC channel too) would otherwise exit under the streams in flight.
function holdWhileOpen(server) {
  const hold = setInterval(() => {
    if (!server[tracked] || server[tracked].size === 0) clearInterval(hold);
  }, 50);
}

function windDownHttp2(server) {
  holdWhileOpen(server);
  for (const session of server[tracked] || []) {
    if (!session.closed && !session.destroyed) session.goaway(HTTP2_NO_ERROR, HTTP2_LAST_STREAM);
  }
  setTimeout(() => {
    for (const session of server[tracked] || []) {
      if (!session.closed && !session.destroyed) session.close();
    }
  }, graceMs).unref();
}

function windDownTcp(server) {
  for (const socket of server[tracked] || []) atBoundary(socket, () => endSocket(socket));
}

// HTTP/2 and plain TCP servers close through net.Server's close (an HTTP server's has its own patch above).
function patchLongLivedClose() {
  const originalClose = net.Server.prototype.close;
  net.Server.prototype.close = function close(...args) {
    const firstClose = !this[closing];
    const result = originalClose.apply(this, args);
    if (firstClose && !isHttp(this)) {
      this[closing] = true;
      if (isHttp2(this)) windDownHttp2(this);
      else windDownTcp(this);
    }
    return result;
  };
}

watchConnections();
patchLongLivedClose();
