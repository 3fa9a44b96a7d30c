'use strict';
// The Node side of Cluster: a relay that the host drives. It forks, disconnects, signals and messages workers
// when told to, and reports what happens to them. It decides nothing.
//
// Usage: node primary.js --listen <socket path or \\.\pipe\name> --node <node path> --scheduling <rr|none>
// The host connects to that endpoint. Node cannot check a peer's credentials, so every connection must first say
// {cmd:'hello', token} with the token the host put in CLUSTER_PRIMARY_TOKEN (and in the owner-only file next to
// this primary's marker, for a later host), within a few seconds, or it is closed. One host at a time: while an
// authenticated connection lives, others are refused, so nobody can take the primary away from its host.
// Protocol: one JSON object per line each way.
//   commands  {cmd:'fork', key, app, mode:'cluster'|'fork', exec, args, execArgv, cwd, env, instance, out, err, logMaxBytes, logKeep,
//                    generation, restarts, definition}   (the last three are kept for the next host and echoed in 'state')
//             {cmd:'disconnect', key}   {cmd:'send', key, message}   {cmd:'signal', key, signal}
//             {cmd:'state'}   {cmd:'ping', seq}   {cmd:'exit'}
//   events    {event:'state', pid, node, nodePath, scheduling, pings:true, workers:[{key, app, instance, pid, ready, started, generation, restarts, definition}]}
//             {event:'pong', seq}   (the host pings every second: a primary that stops answering is killed and replaced)
//             {event:'forked', key, pid}   {event:'listening', key, address, port}
//             {event:'message', key, message}   {event:'disconnect', key}
//             {event:'exit', key, code, signal, error?}   (with error and no 'forked' before it: the worker never started)
// When the host goes away, the primary and its workers go on serving, and a new host adopts them by connecting
// and asking for the state. Only {cmd:'exit'} (or SIGTERM) ends the primary, and its workers with it.
//
// Workers' stdout and stderr come through pipes and are appended here to the instance's log files, so an old
// and a new worker of one instance write to the same file, and a file past its size limit is rotated
// (app-0.out.log -> app-0.out.log.1 -> ...) without losing a line.

const cluster = require('node:cluster');
const childProcess = require('node:child_process');
const fs = require('node:fs');
const crypto = require('node:crypto');
const net = require('node:net');
const readline = require('node:readline');

const options = parseArguments(process.argv.slice(2));
const token = takeToken();
const workers = new Map(); // key -> { process, send(message), disconnect(), app, instance, ready, started }
const logs = new Map(); // path -> { fd, size, users }
let host = null; // the host's connection, while there is one

function parseArguments(args) {
  const parsed = {};
  for (let i = 0; i + 1 < args.length; i += 2) parsed[args[i].replace(/^--/, '')] = args[i + 1];
  if (!parsed.listen) {
    process.stderr.write('usage: node primary.js --listen <endpoint> --node <path> --scheduling <rr|none>\n');
    process.exit(2);
  }
  return parsed;
}

// Read once and removed, so that no worker inherits it.
function takeToken() {
  const value = process.env.CLUSTER_PRIMARY_TOKEN;
  delete process.env.CLUSTER_PRIMARY_TOKEN;
  if (!value) {
    process.stderr.write('no CLUSTER_PRIMARY_TOKEN: the host starts this primary with one\n');
    process.exit(2);
  }
  return Buffer.from(value);
}

function emit(event) {
  // Nobody to tell while no host is connected: the next host asks for the state instead.
  if (host && !host.destroyed) host.write(JSON.stringify(event) + '\n');
}

function relayMessage(key, message) {
  // Only short string messages ('online', 'ready', ...) mean anything to the host.
  if (typeof message !== 'string' || message.length > 256) return;
  if (message === 'online' || message === 'ready') markReady(key);
  emit({ event: 'message', key, message });
}

// Kept so that a host adopting this primary knows which workers were serving already.
function markReady(key) {
  const worker = workers.get(key);
  if (worker) worker.ready = true;
}

function track(key, cmd, proc, handle) {
  let exited = false;
  const drained = outputDrained(proc);
  const onExit = (code, signal, error) => {
    if (exited) return;
    exited = true;
    workers.delete(key);
    // Reported once the worker's last output is in its log, so whoever reads the log after the exit sees it.
    drained.then(() => emit({ event: 'exit', key, code, signal, error }));
  };
  workers.set(key, Object.assign(handle, {
    app: cmd.app, instance: cmd.instance, ready: false, started: Date.now(),
    generation: cmd.generation || 0, restarts: cmd.restarts || 0, definition: cmd.definition,
  }));
  return onExit;
}

function outputDrained(proc) {
  const closed = (stream) => new Promise((resolve) => (!stream || stream.destroyed ? resolve() : stream.once('close', resolve)));
  const cap = new Promise((resolve) => setTimeout(resolve, 1000).unref());
  return Promise.race([Promise.all([closed(proc.stdout), closed(proc.stderr)]), cap]);
}

function forkClusterWorker(cmd, stdio) {
  cluster.setupPrimary({
    exec: cmd.exec,
    args: cmd.args,
    execArgv: cmd.execArgv,
    cwd: cmd.cwd,
    stdio,
    windowsHide: true,
  });
  // cluster.fork copies process.env, so the app's own environment stands in for ours while it forks.
  const ownEnv = process.env;
  process.env = cmd.env;
  let worker;
  try {
    worker = cluster.fork({ NODE_APP_INSTANCE: String(cmd.instance) });
  } finally {
    process.env = ownEnv;
  }
  const onExit = track(cmd.key, cmd, worker.process, {
    process: worker.process,
    send: (message) => worker.isConnected() && worker.send(message),
    disconnect: () => worker.isConnected() && worker.disconnect(),
  });
  emit({ event: 'forked', key: cmd.key, pid: worker.process.pid });
  worker.on('listening', (address) => {
    markReady(cmd.key);
    emit({ event: 'listening', key: cmd.key, address: address.address, port: address.port });
  });
  worker.on('message', (message) => relayMessage(cmd.key, message));
  worker.on('disconnect', () => emit({ event: 'disconnect', key: cmd.key }));
  worker.on('exit', (code, signal) => onExit(code, signal));
  worker.on('error', () => {}); // an IPC write to a dying worker; its exit follows
  return worker.process;
}

function spawnChild(cmd, stdio) {
  const isNodeScript = /\.[cm]?js$/i.test(cmd.exec);
  const options = {
    cwd: cmd.cwd,
    env: Object.assign({}, cmd.env, { NODE_APP_INSTANCE: String(cmd.instance) }),
    windowsHide: true,
  };
  const child = isNodeScript
    ? childProcess.fork(cmd.exec, cmd.args, Object.assign(options, { execArgv: cmd.execArgv, stdio }))
    : childProcess.spawn(cmd.exec, cmd.args, Object.assign(options, { stdio: stdio.slice(0, 3) }));
  const onExit = track(cmd.key, cmd, child, {
    process: child,
    send: (message) => child.connected && child.send(message),
    disconnect: () => {},
  });
  child.on('spawn', () => emit({ event: 'forked', key: cmd.key, pid: child.pid }));
  child.on('error', (error) => {
    if (child.pid === undefined) onExit(null, null, error.message);
  });
  child.on('message', (message) => relayMessage(cmd.key, message));
  child.on('exit', (code, signal) => onExit(code, signal));
  return child;
}

const LOG_FLAGS = fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | (fs.constants.O_NOFOLLOW || 0);

function openLog(path) {
  let log = logs.get(path);
  if (!log) {
    const fd = fs.openSync(path, LOG_FLAGS, 0o600);
    try {
      log = { fd, size: fs.fstatSync(fd).size, users: 0 };
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
    logs.set(path, log);
  }
  log.users++;
  return log;
}

function releaseLog(path) {
  const log = logs.get(path);
  if (log && --log.users === 0) {
    if (log.fd >= 0) fs.closeSync(log.fd);
    logs.delete(path);
  }
}

// The file is reopened whatever happens to the renames: a closed descriptor must never be written to again,
// since its number may belong to another file or socket by then.
function rotate(path, log, keep) {
  fs.closeSync(log.fd);
  log.fd = -1;
  try {
    for (let i = keep - 1; i >= 1; i--) {
      if (fs.existsSync(`${path}.${i}`)) fs.renameSync(`${path}.${i}`, `${path}.${i + 1}`);
    }
    if (keep >= 1) fs.renameSync(path, `${path}.1`);
    else fs.truncateSync(path, 0);
  } finally {
    reopen(path, log);
  }
}

function reopen(path, log) {
  log.fd = fs.openSync(path, LOG_FLAGS, 0o600);
  log.size = fs.fstatSync(log.fd).size;
}

function appendTo(path, log, stream, cmd) {
  if (!stream) return releaseLog(path);
  stream.on('data', (chunk) => {
    try {
      if (log.fd < 0) reopen(path, log);
      // Rotated before a write would take the file past its limit, so no file grows much beyond it.
      if (cmd.logMaxBytes > 0 && log.size > 0 && log.size + chunk.length > cmd.logMaxBytes) rotate(path, log, cmd.logKeep || 0);
      fs.writeSync(log.fd, chunk);
      log.size += chunk.length;
    } catch (error) {
      process.stderr.write(`cannot write ${path}: ${error.message}\n`);
    }
  });
  stream.on('close', () => releaseLog(path));
}

// Opened before the fork: a worker whose output has nowhere to go is not started at all.
function openLogs(cmd) {
  const opened = [];
  try {
    for (const path of [cmd.out, cmd.err]) {
      openLog(path);
      opened.push(path);
    }
  } catch (error) {
    for (const path of opened) releaseLog(path);
    throw new Error(`cannot open its log file: ${error.message}`);
  }
  return opened;
}

function fork(cmd) {
  let paths;
  try {
    paths = openLogs(cmd);
  } catch (error) {
    return emit({ event: 'exit', key: cmd.key, code: null, signal: null, error: error.message });
  }
  let proc;
  try {
    const stdio = ['ignore', 'pipe', 'pipe', 'ipc'];
    proc = cmd.mode === 'cluster' ? forkClusterWorker(cmd, stdio) : spawnChild(cmd, stdio);
  } catch (error) {
    for (const path of paths) releaseLog(path);
    return emit({ event: 'exit', key: cmd.key, code: null, signal: null, error: error.message });
  }
  appendTo(cmd.out, logs.get(cmd.out), proc.stdout, cmd);
  appendTo(cmd.err, logs.get(cmd.err), proc.stderr, cmd);
}

function signal(worker, name) {
  try {
    worker.process.kill(name);
  } catch {
    // Already gone: its exit event says so.
  }
}

function state() {
  return {
    event: 'state',
    pid: process.pid,
    node: process.version,
    nodePath: options.node || process.execPath,
    scheduling: options.scheduling || 'rr',
    pings: true,
    workers: [...workers.entries()].map(([key, w]) => ({
      key, app: w.app, instance: w.instance, pid: w.process.pid, ready: w.ready, started: w.started,
      generation: w.generation, restarts: w.restarts, definition: w.definition,
    })),
  };
}

function handle(cmd) {
  if (cmd.cmd === 'fork') return fork(cmd);
  if (cmd.cmd === 'state') return emit(state());
  if (cmd.cmd === 'ping') return emit({ event: 'pong', seq: cmd.seq });
  if (cmd.cmd === 'exit') return shutdown();
  const worker = workers.get(cmd.key);
  if (!worker) return;
  try {
    if (cmd.cmd === 'disconnect') worker.disconnect();
    else if (cmd.cmd === 'send') worker.send(cmd.message);
    else if (cmd.cmd === 'signal') signal(worker, cmd.signal);
  } catch {
    // The worker is on its way out; its exit event follows.
  }
}

function shutdown() {
  for (const worker of workers.values()) signal(worker, 'SIGKILL');
  process.exit(0);
}

const HELLO_TIMEOUT_MS = 5000;
const HELLO_MAX_BYTES = 1024;

function refuse(socket, why) {
  process.stderr.write(`refused a connection: ${why}\n`);
  socket.destroy();
}

function isHello(line) {
  let hello;
  try {
    hello = JSON.parse(line);
  } catch {
    return false;
  }
  if (!hello || hello.cmd !== 'hello' || typeof hello.token !== 'string') return false;
  const offered = Buffer.from(hello.token);
  return offered.length === token.length && crypto.timingSafeEqual(offered, token);
}

// Until a connection has said the token, only its first line (bounded in size and time) is read.
function serveHost(socket) {
  socket.on('error', () => {});
  if (host) return refuse(socket, 'a host is connected already');
  let pending = Buffer.alloc(0);
  const timer = setTimeout(() => refuse(socket, `no hello within ${HELLO_TIMEOUT_MS} ms`), HELLO_TIMEOUT_MS);
  const onData = (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    const newline = pending.indexOf(10);
    if (newline < 0) {
      if (pending.length > HELLO_MAX_BYTES) {
        clearTimeout(timer);
        refuse(socket, 'a first line that is too long');
      }
      return;
    }
    clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.pause();
    if (!isHello(pending.subarray(0, newline).toString())) return refuse(socket, 'no valid token');
    if (host) return refuse(socket, 'a host is connected already');
    const rest = pending.subarray(newline + 1);
    if (rest.length > 0) socket.unshift(rest);
    authenticated(socket);
  };
  socket.on('data', onData);
  socket.on('close', () => clearTimeout(timer));
}

function authenticated(socket) {
  host = socket;
  socket.on('close', () => {
    if (host === socket) host = null;
  });
  readline.createInterface({ input: socket }).on('line', (line) => {
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch {
      return;
    }
    handle(cmd);
  });
}

// The host that started this process may be gone: writing to the stdio it left must not end the primary.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
process.on('SIGINT', () => {}); // a Ctrl+C in a terminal is the host's to handle
process.on('SIGHUP', () => {});
process.on('SIGTERM', shutdown);

const server = net.createServer(serveHost);
server.on('error', (error) => {
  process.stderr.write(`cannot listen on ${options.listen}: ${error.message}\n`);
  process.exit(1);
});
// The socket is created owner only (its folder is the owner's too); the umask goes back to what the workers inherit.
const umask = process.umask(0o077);
server.listen(options.listen, () => process.umask(umask));
