'use strict';
// Loaded into an app's instances with --require when the app has an HTTP readiness check (-HealthCheckPath).
// In cluster mode the shared port reaches every instance, so a check sent there could be answered by an old
// one. Instead, the first time the app asks an HTTP(S) server to listen, that listen is held back:
//   - the same request handlers answer on a loopback port of this instance alone (127.0.0.1, a free port,
//     not shared with the cluster), which the host is told with the message 'cluster:health-port:<port>';
//   - the host sends its checks there, and once one passes it says 'cluster:serve': the held listens go
//     ahead, and only then does the instance take shared traffic (and its 'listening' event fires).
// The loopback port stays open for the liveness checks while the instance runs; it keeps no process alive.

const http = require('node:http');
const https = require('node:https');
const net = require('node:net');

const PORT_MESSAGE = 'cluster:health-port:';
const SERVE_MESSAGE = 'cluster:serve';

function holdListensUntilHealthy() {
  if (typeof process.send !== 'function') return; // no host to talk to: nothing to hold for
  const originalListen = net.Server.prototype.listen;
  const held = []; // [server, args] in the order the app asked
  let serving = false;
  let probe = null;

  const isHttpServer = (server) => server instanceof http.Server || server instanceof https.Server;

  function openProbe(server) {
    // Plain HTTP on loopback, whatever the app serves: the host checks the handlers, not TLS.
    probe = http.createServer((request, response) => server.emit('request', request, response));
    probe.on('error', (error) => process.stderr.write(`cluster health check port: ${error.message}\n`));
    originalListen.call(probe, { port: 0, host: '127.0.0.1', exclusive: true }, () => {
      probe.unref();
      process.send(PORT_MESSAGE + probe.address().port);
    });
    server.once('close', () => probe.close());
  }

  function serve() {
    if (serving) return;
    serving = true;
    process.removeListener('message', onMessage);
    for (const [server, args] of held.splice(0)) originalListen.apply(server, args);
  }

  function onMessage(message) {
    if (message === SERVE_MESSAGE) serve();
  }

  net.Server.prototype.listen = function listen(...args) {
    if (serving || this === probe || !isHttpServer(this)) return originalListen.apply(this, args);
    if (held.length === 0) {
      process.on('message', onMessage);
      openProbe(this);
    }
    held.push([this, args]);
    return this;
  };
}

holdListensUntilHealthy();
