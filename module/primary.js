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
//   commands  {cmd:'fork', key, app, mode:'cluster'|'fork', exec, args, execArgv, cwd, env, instance, instanceVariable, node, out, err,
//                    logMaxBytes, logKeep, generation, restarts, definition}   (the last three are kept for the next host and echoed in 'state';
//                    in fork mode, node says whether Node forks exec as a script, with an IPC channel, or runs it as a program;
//                    instanceVariable names the variable holding the instance's number, NODE_APP_INSTANCE by default)
//             {cmd:'disconnect', key}   {cmd:'send', key, message}   {cmd:'message', key, data}   (data: JSON text, sent as the value it stands for)
//             {cmd:'signal', key, signal, group?}   (group false: the worker's process alone, not its process group)
//             {cmd:'restarts', key, restarts}   (the instance's restart count, as the host now counts it)
//             {cmd:'state'}   {cmd:'ping', seq}   {cmd:'exit'}
//   events    {event:'state', pid, node, nodePath, scheduling, pings:true, workers:[{key, app, instance, pid, ready, started, generation, restarts, healthPort?, definition}]}
//             {event:'pong', seq}   (the host pings every second: a primary that stops answering is killed and replaced)
//             {event:'forked', key, pid}   {event:'listening', key, address, port}
//             {event:'message', key, message}   {event:'disconnect', key}
//             {event:'exit', key, code, signal, error?}   (with error and no 'forked' before it: the worker never started)
// The instances of a sticky app (-Sticky) also talk to the primary on their own, through the cluster's channel:
// their TCP listens are the primary's to accept, and it hands each connection to one of them (see 'Sticky sessions').
// When the host goes away, the primary and its workers go on serving, and a new host adopts them by connecting
// and asking for the state. Only {cmd:'exit'} (or SIGTERM) ends the primary, and its workers with it.
//
// Process trees: on Unix each worker is forked detached, so it leads its own process group (and session), and the
// processes it spawns are in that group too. Every signal the host sends a worker goes to its whole group, and
// when a worker has exited, whatever is left of its group is killed: stopping, retiring or removing an instance
// ends what it started, after the same grace the instance had. A cluster worker still exits with its primary
// (through its IPC channel); when the primary dies, the host ends its workers' groups. Windows has no process groups: the final kill there ends the worker's process tree.
//
// Workers' stdout and stderr come through pipes and are appended here to the instance's log files, in whole lines,
// so an old and a new worker of one instance write to the same file, and a file past its size limit is rotated
// (app-0.out.log -> app-0.out.log.1 -> ...) between two lines, without losing or splitting one. Each line is stamped
// as it is read with the time (UTC, ms) and the worker's pid: '2026-01-02T03:04:05.678Z 4242 the line'. A log file
// that something else moved or removed (logrotate) is reopened at its path within a second.

const cluster = require('node:cluster');
const childProcess = require('node:child_process');
const fs = require('node:fs');
const crypto = require('node:crypto');
const net = require('node:net');
const readline = require('node:readline');

const options = parseArguments(process.argv.slice(2));
const token = takeToken();
const workers = new Map(); // key -> { process, send(message), disconnect(), app, instance, ready, started }
const logs = new Map(); // path -> { path, fd, size, users, failing }
let host = null; // the host's connection, while there is one
const ownGroups = process.platform !== 'win32';

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
  if (message.startsWith(HEALTH_PORT_MESSAGE)) keepHealthPort(key, Number(message.slice(HEALTH_PORT_MESSAGE.length)));
  emit({ event: 'message', key, message });
}

// Said by the health preload (health.js): the port an instance answers its checks on, kept for a later host.
const HEALTH_PORT_MESSAGE = 'cluster:health-port:';
function keepHealthPort(key, port) {
  const worker = workers.get(key);
  if (worker && Number.isInteger(port)) worker.healthPort = port;
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
    sticky.leave(key);
    sticky.release(proc);
    endGroup(proc);
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
    worker = detached(() => cluster.fork({ [instanceVariable(cmd)]: String(cmd.instance) }));
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
  worker.process.on('internalMessage', (message, socket) => {
    // One app's mistake must not end the primary, and with it every app it serves.
    try {
      sticky.onMessage(cmd, worker, message, socket);
    } catch (error) {
      process.stderr.write(`sticky message from ${cmd.key}: ${error.message}\n`);
      if (socket) socket.destroy();
    }
  });
  worker.on('disconnect', () => {
    sticky.leave(cmd.key); // a channel closed by the worker itself can carry no connection either
    emit({ event: 'disconnect', key: cmd.key });
  });
  worker.on('exit', (code, signal) => onExit(code, signal));
  worker.on('error', () => {}); // an IPC write to a dying worker; its exit follows
  return worker.process;
}

// cluster.fork takes no 'detached' option, so it is added to the one spawn the fork makes.
function detached(forkWorker) {
  if (!ownGroups) return forkWorker();
  const prototype = childProcess.ChildProcess.prototype;
  const spawn = prototype.spawn;
  prototype.spawn = function spawnDetached(options) {
    options.detached = true;
    return spawn.call(this, options);
  };
  try {
    return forkWorker();
  } finally {
    prototype.spawn = spawn;
  }
}

function instanceVariable(cmd) {
  return cmd.instanceVariable || 'NODE_APP_INSTANCE';
}

function spawnChild(cmd, stdio) {
  const isNodeScript = typeof cmd.node === 'boolean' ? cmd.node : /\.[cm]?js$/i.test(cmd.exec);
  const options = {
    cwd: cmd.cwd,
    env: Object.assign({}, cmd.env, { [instanceVariable(cmd)]: String(cmd.instance) }),
    detached: ownGroups,
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

// ---- Sticky sessions (-Sticky) ----
// The instances of a sticky app load the sticky preload (sticky.js), which asks here to listen on the port the app
// asked for. The primary listens on that address itself (once, for one app) and hands each connection, unread, to
// the worker of the instance the client's address maps to, among the instances serving it. While an instance is
// being reloaded it has two workers: the one that served first keeps its clients until it is disconnected
// (retired), and its successor takes them from then on, so a client stays with its instance across a reload.
// The messages (Node's internal kind, which the app's own 'message' listeners never see) are listed in sticky.js.
const STICKY = 'NODE_CLUSTER_STICKY';

function createStickyRouter() {
  const listeners = new Map(); // address -> { address, app, server, result, members: [{ key, instance, worker, id, serving }] }

  function tell(member, message, socket) {
    member.worker.send(Object.assign({ cmd: STICKY, id: member.id }, message), socket, (error) => {
      if (error && socket) socket.destroy();
    });
  }

  // A client's place: a hash of its address (FNV-1a), so that it maps to the same instance for as long as the
  // set of serving instances stays the same.
  function hash(clientAddress) {
    const text = String(clientAddress || '').replace(/^::ffff:/, '');
    let h = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    return (h ^ (h >>> 16)) >>> 0;
  }

  function choose(listener, clientAddress) {
    const serving = listener.members.filter((m) => m.serving);
    if (serving.length === 0) return null;
    const instances = [...new Set(serving.map((m) => m.instance))].sort((a, b) => a - b);
    const instance = instances[hash(clientAddress) % instances.length];
    return serving.find((m) => m.instance === instance); // members are in the order they came: the first is the elder
  }

  const routed = new WeakMap(); // socket on its way to a worker -> its listener

  // Sockets Node still holds for a worker whose channel is gone (queued behind a handle it never acknowledged):
  // Node neither sends nor closes them. Called once the worker has left: they go to another instance, unread.
  function release(proc) {
    const queued = proc._handleQueue || [];
    proc._handleQueue = null;
    if (proc._pendingMessage) {
      proc._pendingMessage.handle.close(); // sent: maybe read there, so not handed again
      proc._pendingMessage = null;
    }
    for (const entry of queued) {
      if (!(entry.handle instanceof net.Socket)) continue;
      const listener = routed.get(entry.handle);
      if (listener && listeners.get(listener.address) === listener) handOver(listener, entry.handle);
      else entry.handle.destroy();
    }
  }

  function handOver(listener, socket) {
    routed.set(socket, listener);
    const member = choose(listener, socket.remoteAddress);
    if (!member) {
      socket.destroy(); // no instance serves this address just now (they are all restarting)
      return;
    }
    socket.server = null; // handed over for good: this server keeps no account of it
    tell(member, { act: 'connection', address: listener.address }, socket);
  }

  function closeIfUnused(listener) {
    if (listener.members.length > 0 || !listener.result || listeners.get(listener.address) !== listener) return;
    listeners.delete(listener.address);
    listener.server.close();
  }

  function open(address, app, message) {
    const server = net.createServer({ pauseOnConnect: true });
    const listener = { address, app, server, result: null, members: [] };
    listeners.set(address, listener);
    server.on('connection', (socket) => handOver(listener, socket));
    server.on('error', (error) => {
      if (listener.result) {
        process.stderr.write(`sticky listener on ${address}: ${error.message}\n`);
        return;
      }
      // It could not listen: every worker that asked is told, as the cluster tells a worker its listen failed.
      listeners.delete(address);
      const failure = { act: 'listen-result', error: { code: error.code, errno: error.errno, message: error.message, syscall: error.syscall } };
      for (const member of listener.members.splice(0)) tell(member, failure);
    });
    try {
      server.listen({ port: message.port, host: message.host, backlog: message.backlog, ipv6Only: message.ipv6Only }, () => {
        const bound = server.address();
        listener.result = { act: 'listen-result', address: bound.address, family: bound.family, port: bound.port };
        for (const member of listener.members) tell(member, listener.result);
        closeIfUnused(listener);
      });
    } catch (error) {
      process.nextTick(() => server.emit('error', error)); // told to the worker once it is a member, as a failed bind is
    }
    return listener;
  }

  function listen(cmd, worker, message) {
    const port = Number(message.port) || 0;
    // Port 0 means a port of the system's choice, shared by the app's instances (as the cluster shares it).
    // A second listen of one worker on the same address is a listener of its own, as in the cluster (index).
    const address = `${message.host || ''}:${port}${port === 0 ? `:${cmd.app}` : ''}#${Number(message.index) || 0}`;
    let listener = listeners.get(address);
    const member = { key: cmd.key, instance: cmd.instance, worker, id: message.id, serving: false };
    if (listener && listener.app !== cmd.app) {
      tell(member, { act: 'listen-result', error: { code: 'EADDRINUSE', message: `address already in use by the app '${listener.app}'`, syscall: 'listen' } });
      return;
    }
    if (!listener) listener = open(address, cmd.app, Object.assign({}, message, { port }));
    listener.members.push(member);
    if (listener.result) tell(member, listener.result);
  }

  function find(key, id) {
    for (const listener of listeners.values()) {
      const member = listener.members.find((m) => m.key === key && m.id === id);
      if (member) return { listener, member };
    }
    return null;
  }

  function remove(found) {
    found.listener.members.splice(found.listener.members.indexOf(found.member), 1);
    closeIfUnused(found.listener);
  }

  function onMessage(cmd, worker, message, socket) {
    if (!message || message.cmd !== STICKY) return;
    if (message.act === 'listen') return listen(cmd, worker, message);
    const found = find(cmd.key, message.id);
    if (message.act === 'serving' && found) {
      found.member.serving = true;
      markReady(cmd.key);
      emit({ event: 'listening', key: cmd.key, address: found.listener.result.address, port: found.listener.result.port });
    } else if (message.act === 'closed' && found) {
      remove(found);
    } else if (message.act === 'return' && socket) {
      // A connection that reached a server as the app closed it: another instance takes it, unread.
      if (socket._handle) socket._handle.readStop();
      if (found) remove(found);
      const listener = listeners.get(message.address);
      if (listener && listener.app === cmd.app) handOver(listener, socket);
      else socket.destroy();
    }
  }

  // A worker disconnected or gone gets no more connections; a listener nobody uses any more closes.
  function leave(key) {
    for (const listener of [...listeners.values()]) {
      listener.members = listener.members.filter((m) => m.key !== key);
      closeIfUnused(listener);
    }
  }

  return { onMessage, leave, release };
}

const sticky = createStickyRouter();

// A line longer than this, with no newline yet, is written in pieces of at most this many bytes, each ended by a
// newline: holding a line back until its newline must not let one endless line grow the primary's memory.
const LOG_LINE_MAX_BYTES = 64 * 1024;
const NEWLINE = 10;
const NEWLINE_BYTES = Buffer.from('\n');

// O_NOFOLLOW: a symbolic link planted at a log path is refused (ELOOP), never written through.
function openLogFile(path) {
  try {
    return fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | (fs.constants.O_NOFOLLOW || 0), 0o600);
  } catch (error) {
    if (error.code === 'ELOOP') {
      throw new Error(`the log file ${path} is a symbolic link; logs are never written through one. Remove it.`);
    }
    throw new Error(`cannot open the log file ${path}: ${error.message}`);
  }
}

function openLog(path) {
  let log = logs.get(path);
  if (!log) {
    const fd = openLogFile(path);
    log = { path, fd, size: fs.fstatSync(fd).size, users: 0, failing: false };
    logs.set(path, log);
  }
  log.users++;
  return log;
}

function releaseLog(log) {
  if (--log.users > 0) return;
  if (log.fd !== null) fs.closeSync(log.fd);
  logs.delete(log.path);
}

// Said once until writing works again, so that a log that cannot be written does not flood the host log.
function logFailed(log, error) {
  if (!log.failing) process.stderr.write(`cannot write ${log.path}: ${error.message}\n`);
  log.failing = true;
}

// app-0.out.log -> .1 -> .2 ... (renames move links, never follow them); with no file to keep, the file is emptied.
function rotate(log, keep) {
  if (keep < 1) {
    fs.ftruncateSync(log.fd, 0);
    log.size = 0;
    return;
  }
  fs.closeSync(log.fd);
  log.fd = null;
  for (let i = keep - 1; i >= 1; i--) {
    if (fs.existsSync(`${log.path}.${i}`)) fs.renameSync(`${log.path}.${i}`, `${log.path}.${i + 1}`);
  }
  fs.renameSync(log.path, `${log.path}.1`);
  log.fd = openLogFile(log.path);
  log.size = 0;
}

function writeAll(fd, data) {
  for (let done = 0; done < data.length;) done += fs.writeSync(fd, data, done, data.length - done);
}

// Writes whole lines (data ends with a newline), rotating between two lines before the file would pass its
// limit, so that no line is ever split across two files. A single line longer than the limit gets a file of its own.
function writeLines(log, data, cmd) {
  const max = cmd.logMaxBytes > 0 ? cmd.logMaxBytes : Infinity;
  let start = 0;
  while (start < data.length) {
    if (log.fd === null) {
      // A rotation that could not open the new file: tried again with each write.
      log.fd = openLogFile(log.path);
      log.size = fs.fstatSync(log.fd).size;
    }
    let end = data.length;
    if (log.size + (end - start) > max) {
      log.size = fs.fstatSync(log.fd).size; // it may have been emptied meanwhile (Clear-ClusterAppLog, copytruncate)
    }
    if (log.size + (end - start) > max) {
      const room = max - log.size;
      const lastFitting = room > 0 ? data.lastIndexOf(NEWLINE, start + room - 1) : -1;
      if (lastFitting >= start) {
        end = lastFitting + 1;
      } else if (log.size > 0) {
        rotate(log, cmd.logKeep || 0);
        continue;
      } else {
        end = data.indexOf(NEWLINE, start) + 1;
      }
    }
    writeAll(log.fd, data.subarray(start, end));
    log.size += end - start;
    start = end;
  }
}

// Where to cut a line that is too long: at most LOG_LINE_MAX_BYTES, and never inside a UTF-8 character.
function cutPoint(data) {
  let cut = LOG_LINE_MAX_BYTES;
  while (cut > 0 && (data[cut] & 0xc0) === 0x80) cut--;
  return cut > 0 ? cut : LOG_LINE_MAX_BYTES;
}

// What begins each line in the log: when it was read, and which process wrote it.
function stamp(pid) {
  return Buffer.from(`${new Date().toISOString()} ${pid === undefined ? 0 : pid} `);
}

// A stream's output goes to its log in whole lines only: the unfinished last line of a chunk waits for its newline
// (or the stream's end), so that the lines of two workers writing to one file never mix and a rotation never tears one.
function appendTo(log, stream, cmd, pid) {
  if (!stream) {
    releaseLog(log);
    return;
  }
  let partial = null;
  const write = (data) => {
    try {
      writeLines(log, data, cmd);
      log.failing = false;
    } catch (error) {
      logFailed(log, error);
    }
  };
  stream.on('data', (chunk) => {
    const data = partial ? Buffer.concat([partial, chunk]) : chunk;
    partial = null;
    const prefix = stamp(pid);
    const stamped = [];
    let line = 0; // where the current line begins
    for (;;) {
      const newline = data.indexOf(NEWLINE, line);
      const end = newline < 0 ? data.length : newline;
      if (end - line > LOG_LINE_MAX_BYTES) {
        const cut = line + cutPoint(data.subarray(line));
        stamped.push(prefix, data.subarray(line, cut), NEWLINE_BYTES);
        line = cut;
        continue;
      }
      if (newline < 0) break;
      stamped.push(prefix, data.subarray(line, newline + 1));
      line = newline + 1;
    }
    if (stamped.length > 0) write(Buffer.concat(stamped));
    if (line < data.length) partial = Buffer.from(data.subarray(line)); // a copy: the chunk it came from is not kept alive
  });
  stream.on('close', () => {
    if (partial) write(Buffer.concat([stamp(pid), partial, NEWLINE_BYTES]));
    partial = null;
    releaseLog(log);
  });
}

// A log file moved away or removed by something else (logrotate without copytruncate): its descriptor is closed, and
// the next line opens a new file at the path. A link planted there is refused when that file is opened.
function reopenMovedLogs() {
  for (const log of logs.values()) {
    if (log.fd === null) continue;
    let moved;
    try {
      const atPath = fs.lstatSync(log.path);
      const open = fs.fstatSync(log.fd);
      moved = atPath.ino !== open.ino || atPath.dev !== open.dev;
    } catch (error) {
      moved = error.code === 'ENOENT';
    }
    if (!moved) continue;
    try {
      fs.closeSync(log.fd);
    } catch {
      // Closed already.
    }
    log.fd = null;
  }
}

// The logs are opened before the process is started: a log that cannot be opened (no space, no permission)
// means the instance does not start, rather than a worker that runs on while it is reported as failed.
function fork(cmd) {
  // The logs are opened first: a worker whose output has nowhere to go is not started.
  const opened = [];
  try {
    opened.push(openLog(cmd.out));
    opened.push(openLog(cmd.err));
  } catch (error) {
    opened.forEach(releaseLog);
    process.stderr.write(`did not start ${cmd.key}: ${error.message}\n`);
    emit({ event: 'exit', key: cmd.key, code: null, signal: null, error: error.message });
    return;
  }
  const [out, err] = opened;
  let proc;
  try {
    const stdio = ['ignore', 'pipe', 'pipe', 'ipc'];
    proc = cmd.mode === 'cluster' ? forkClusterWorker(cmd, stdio) : spawnChild(cmd, stdio);
  } catch (error) {
    opened.forEach(releaseLog);
    workers.delete(cmd.key);
    emit({ event: 'exit', key: cmd.key, code: null, signal: null, error: error.message });
    return;
  }
  appendTo(out, proc.stdout, cmd, proc.pid);
  appendTo(err, proc.stderr, cmd, proc.pid);
}

function signal(worker, name) {
  const proc = worker.process;
  if (!ownGroups && name === 'SIGKILL' && proc.pid !== undefined) return killTree(proc.pid);
  try {
    if (ownGroups && proc.pid !== undefined) process.kill(-proc.pid, name);
    else proc.kill(name);
  } catch {
    try {
      proc.kill(name); // not a group leader (forked by an older primary)
    } catch {
      // Already gone: its exit event says so.
    }
  }
}

// What is left of an exited worker's process group. The group outlives its leader only while a member does, and
// while it does its id is not given to a new process.
function endGroup(proc) {
  if (!ownGroups || proc.pid === undefined) return;
  try {
    process.kill(-proc.pid, 'SIGKILL');
  } catch {
    // Nothing left of it.
  }
}

function killTree(pid) {
  const taskkill = childProcess.spawn('taskkill', ['/T', '/F', '/PID', String(pid)], { stdio: 'ignore', windowsHide: true });
  taskkill.on('error', () => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  });
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
      generation: w.generation, restarts: w.restarts, healthPort: w.healthPort, definition: w.definition,
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
    if (cmd.cmd === 'disconnect') {
      sticky.leave(cmd.key); // no new connection reaches it from here on
      worker.disconnect();
    }
    else if (cmd.cmd === 'send') worker.send(cmd.message);
    else if (cmd.cmd === 'message') worker.send(JSON.parse(cmd.data));
    else if (cmd.cmd === 'signal' && cmd.group === false) worker.process.kill(cmd.signal);
    else if (cmd.cmd === 'signal') signal(worker, cmd.signal);
    else if (cmd.cmd === 'restarts') worker.restarts = cmd.restarts;
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

setInterval(reopenMovedLogs, 1000).unref();

const server = net.createServer(serveHost);
server.on('error', (error) => {
  process.stderr.write(`cannot listen on ${options.listen}: ${error.message}\n`);
  process.exit(1);
});
// The socket is created owner only (its folder is the owner's too); the umask goes back to what the workers inherit.
const umask = process.umask(0o077);
server.listen(options.listen, () => process.umask(umask));
