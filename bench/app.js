'use strict';
// The benchmark's HTTP app: the same file runs under PM2 and under Cluster. Dependency-free, 127.0.0.1 only.
// With BENCH_STATS_DIR set, each process keeps a count of the requests it answered in <dir>/<pid>, so the
// benchmark can see how requests were spread across instances without adding work to the measured path.

const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');

const port = Number(process.env.PORT) || 3000;
const statsDir = process.env.BENCH_STATS_DIR;
const body = JSON.stringify({ ok: true, pid: process.pid });

let served = 0;
let written = 0;

function writeStats() {
  if (served === written) return;
  written = served;
  try {
    fs.writeFileSync(path.join(statsDir, String(process.pid)), String(written));
  } catch {
    // The folder is gone: the benchmark has finished with this run.
  }
}

const server = http.createServer((req, res) => {
  served += 1;
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
});

if (statsDir) {
  setInterval(writeStats, 200).unref();
  process.on('exit', writeStats);
}

server.listen(port, '127.0.0.1');
