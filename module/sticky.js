'use strict';
// Loaded into the instances of a sticky app (-Sticky) with --require, before the health preload. The app's TCP
// listens (HTTP, HTTPS, HTTP/2, WebSocket servers, plain net servers: anything on a port) are not shared through
// the cluster. Instead:
//   - the primary listens on the address the app asked for, accepts each connection itself and hands it to the
//     instance its client's address maps to, so that one client reaches one instance while that instance lives;
//   - here, the app's server listens on a loopback port of this instance alone (so that it is a listening server
//     in every way the app can see, with server.address() saying the address the app asked for), and each
//     connection the primary hands over is fed to it as if the server had accepted it.
// A listen on a path, a handle or with exclusive: true is the app's own business and goes ahead unchanged.
//
// When the worker disconnects (a reload retiring it, a stop), its sticky servers close first, and its IPC channel
// only once they have closed, as the cluster does for the servers it shares: until then the worker drains its
// connections (the drain preload winds them down), and the primary has stopped handing it new ones.
//
// The messages are Node's internal kind ('NODE_' commands), which reach 'internalMessage' listeners only: the
// app's own process.on('message') never sees them.
//   worker -> primary  {cmd, act:'listen', id, port, host, backlog, ipv6Only}   {cmd, act:'serving', id}
//                      {cmd, act:'closed', id}   {cmd, act:'return', id} + a socket this server could not take
//   primary -> worker  {cmd, act:'listen-result', id, address, family, port} or {..., error:{code, message, syscall}}
//                      {cmd, act:'connection', id} + the socket

const cluster = require('node:cluster');
const net = require('node:net');

const STICKY = 'NODE_CLUSTER_STICKY';

function stickyListens() {
  if (!cluster.isWorker || typeof process.send !== 'function') return; // not under the primary: nothing to do
  const originalListen = net.Server.prototype.listen;
  const waiting = new Map(); // id -> reply handler of a listen asked for
  const servers = new Map(); // id -> server that serves connections handed over
  const indexes = new Map(); // id -> { key: 'host:port', index } of each listen asked for and not closed
  let nextId = 1;

  function send(message, handle) {
    if (process.connected && process.channel) process.send(Object.assign({ cmd: STICKY }, message), handle, () => {});
  }

  // What the app asked for, when it is a TCP port; null for anything else (a path, a handle, an fd, exclusive).
  function portListen(args) {
    let options;
    if (args.length > 0 && args[0] !== null && typeof args[0] === 'object') {
      options = args[0];
      if (options.path !== undefined || options.handle !== undefined || options.fd !== undefined || options._handle !== undefined) return null;
      if (options.exclusive) return null;
    } else {
      const isPort = typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]));
      if (args.length > 0 && typeof args[0] !== 'function' && args[0] !== undefined && !isPort) return null;
      options = { port: args[0] };
      const rest = args.slice(1);
      if (typeof rest[0] === 'string') options.host = rest.shift();
      if (typeof rest[0] === 'number') options.backlog = rest.shift();
    }
    const port = options.port === undefined || options.port === null || typeof options.port === 'function' ? 0 : Number(options.port);
    // Not a port: Node's own listen says so to the app, as it would without sticky sessions.
    if (!Number.isInteger(port) || port < 0 || port > 65535) return null;
    const callback = [...args].reverse().find((arg) => typeof arg === 'function');
    return {
      port,
      host: typeof options.host === 'string' ? options.host : undefined,
      backlog: typeof options.backlog === 'number' ? options.backlog : undefined,
      ipv6Only: options.ipv6Only === true,
      callback,
    };
  }

  function listenError(error, request) {
    const failure = new Error(`listen ${error.code} ${request.host || '::'}:${request.port}: ${error.message}`);
    return Object.assign(failure, { code: error.code, errno: error.errno, syscall: error.syscall || 'listen', address: request.host, port: request.port });
  }

  // The app's server, listening on a loopback port of this instance's own, takes connections the primary hands over.
  function serve(server, id, result) {
    const address = { address: result.address, family: result.family, port: result.port };
    server.address = function stickyAddress() {
      return this.listening ? Object.assign({}, address) : null;
    };
    // The primary stops handing it connections as soon as it starts closing (not once its connections are gone);
    // it stays among the servers the disconnect waits for until it has closed.
    let closing = false;
    const stopTaking = () => {
      if (closing) return;
      closing = true;
      send({ act: 'closed', id });
    };
    const close = server.close;
    server.close = function closeSticky(...args) {
      stopTaking();
      return close.apply(this, args);
    };
    server.once('listening', () => {
      servers.set(id, server);
      send({ act: 'serving', id });
    });
    server.once('close', () => {
      servers.delete(id);
      delete server.address;
      delete server.close;
      stopTaking();
    });
    originalListen.call(server, { port: 0, host: '127.0.0.1', exclusive: true });
  }

  // What the server's own accept does with a new connection (net.js onconnection), so that it counts as the
  // server's: close() then waits for it before 'close' fires and its callback runs, as an app (and a draining
  // worker) relies on; the socket's end takes it off the count.
  function accept(server, socket) {
    if (server.maxConnections && server._connections >= server.maxConnections) {
      socket.destroy();
      return;
    }
    socket.allowHalfOpen = server.allowHalfOpen;
    if (server.noDelay) socket.setNoDelay(true);
    if (server.keepAlive) socket.setKeepAlive(true, server.keepAliveInitialDelay * 1000); // the server keeps seconds
    server._connections++;
    socket.server = server;
    socket._server = server;
    server.emit('connection', socket);
  }

  net.Server.prototype.listen = function listen(...args) {
    const request = portListen(args);
    if (!request || this.listening) return originalListen.apply(this, args);
    if (request.callback) this.once('listening', request.callback);
    const id = nextId++;
    waiting.set(id, (result) => {
      if (result.error) {
        indexes.delete(id);
        this.emit('error', listenError(result.error, request));
        return;
      }
      serve(this, id, result);
    });
    // The how-manyth open listen of this worker on that address: each is served on its own, as the cluster does.
    const key = `${request.host || ''}:${request.port}`;
    const taken = new Set([...indexes.values()].filter((listen) => listen.key === key).map((listen) => listen.index));
    let index = 0;
    while (taken.has(index)) index++;
    indexes.set(id, { key, index });
    this.once('close', () => indexes.delete(id));
    send({ act: 'listen', id, index, port: request.port, host: request.host, backlog: request.backlog, ipv6Only: request.ipv6Only });
    return this;
  };

  process.on('internalMessage', (message, socket) => {
    if (!message || message.cmd !== STICKY) return;
    if (message.act === 'listen-result') {
      const reply = waiting.get(message.id);
      waiting.delete(message.id);
      if (reply) reply(message);
    } else if (message.act === 'connection' && socket) {
      const server = servers.get(message.id);
      // A server the app closed just as the connection was on its way: the primary gives it to another instance.
      if (!server || !server.listening) {
        if (socket._handle) socket._handle.readStop(); // not a byte of it read here: the next instance gets the request
        send({ act: 'return', id: message.id, address: message.address }, socket);
      } else {
        accept(server, socket);
      }
    }
  });

  // The channel closes only once the sticky servers have: a retiring worker drains first, like a cluster one.
  const disconnect = process.disconnect;
  let deferring = false;
  process.disconnect = function disconnectAfterServers(...args) {
    const open = [...servers.values()];
    // Only the cluster's own disconnect waits; Node calling this on the channel's end (the primary is gone) goes through.
    if (open.length === 0 || deferring || !(cluster.worker && cluster.worker.exitedAfterDisconnect)) return disconnect.apply(process, args);
    deferring = true;
    let left = open.length;
    const closed = () => {
      if (--left === 0 && process.connected && process.channel) disconnect.apply(process, args);
    };
    for (const server of open) {
      server.once('close', closed);
      server.close();
    }
    return undefined;
  };
}

stickyListens();
