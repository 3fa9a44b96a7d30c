'use strict';
// Kills a process with SIGKILL under a bounded, paced load and measures how long the app takes to answer again.
// Each of --concurrency loops asks http://127.0.0.1:<port>/ over a new connection, then waits --interval-ms.
// After --before-ms of load it kills --kill; the app is back at the first 200 answered by a process that is not
// one of --old (the app's processes before the kill). It stops --after-ms later, or --bound-ms after the kill
// if the app is not back by then, and prints one JSON line:
//   {"backMs": <ms from the kill to the first 200 again, or null>, "ok": n, "failed": n, "failedBefore": n, "errors": {"<code>": n}}
// failed counts the requests that failed (refused, reset, timed out, or not a 200) from the kill on;
// failedBefore those that failed before it (none, on a healthy app).
//
//   node primary-loss.js --port 8080 --kill <pid> --old <pid,pid> [--concurrency 4] [--interval-ms 5]
//                        [--before-ms 500] [--after-ms 500] [--bound-ms 10000]

const http = require('node:http');

function parseArguments(argv) {
  const options = { port: 0, kill: 0, old: '', concurrency: 4, intervalMs: 5, beforeMs: 500, afterMs: 500, boundMs: 10000 };
  for (let i = 0; i + 1 < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(name in options)) throw new Error(`unknown option ${argv[i]}`);
    options[name] = typeof options[name] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!options.port || !options.kill) throw new Error('usage: node primary-loss.js --port <port> --kill <pid> --old <pids>');
  options.old = new Set(String(options.old).split(',').filter(Boolean).map(Number));
  return options;
}

const options = parseArguments(process.argv.slice(2));
const started = process.hrtime.bigint();
const now = () => Number(process.hrtime.bigint() - started) / 1e6;
let killedAt = null;
let backAt = null;
let stopAt = Infinity;
const counts = { ok: 0, failed: 0, failedBefore: 0, errors: {} };

// A request that fails once the kill is done counts, whenever it was sent: the kill cut it off.
function fail(code) {
  if (killedAt === null) {
    counts.failedBefore += 1;
    return;
  }
  counts.failed += 1;
  counts.errors[code] = (counts.errors[code] || 0) + 1;
}

function request() {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: options.port, path: '/', agent: false, headers: { Connection: 'close' }, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => {
        if (res.statusCode !== 200) {
          fail(`status ${res.statusCode}`);
        } else {
          counts.ok += 1;
          let pid = 0;
          try { pid = JSON.parse(body).pid; } catch { /* not the bench app's answer */ }
          if (killedAt !== null && backAt === null && !options.old.has(pid)) {
            backAt = now();
            stopAt = backAt + options.afterMs;
          }
        }
        resolve();
      });
      res.on('error', (error) => { fail(error.code || 'error'); resolve(); });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (error) => { fail(error.code || 'error'); resolve(); });
  });
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function loop() {
  while (now() < stopAt) {
    await request();
    await pause(options.intervalMs);
  }
}

setTimeout(() => {
  try {
    process.kill(options.kill, 'SIGKILL');
  } catch (error) {
    process.stderr.write(`could not kill ${options.kill}: ${error.message}\n`);
    process.exit(1);
  }
  killedAt = now();
  stopAt = killedAt + options.boundMs;
}, options.beforeMs);

Promise.all(Array.from({ length: options.concurrency }, loop)).then(() => {
  const backMs = backAt === null ? null : Math.round((backAt - killedAt) * 10) / 10;
  process.stdout.write(JSON.stringify({ backMs, ok: counts.ok, failed: counts.failed, failedBefore: counts.failedBefore, errors: counts.errors }) + '\n');
});
