// One load-generator process in Node with the `ws` package: the same
// protocol as bench/loadgen.py (read its docstring), started by
// bench/compare.py with NODE_PATH pointing at .cache/bench/node/node_modules.
//   node bench/loadgen.js '{"host": "127.0.0.1", "port": 8000, "path": "/ws/bench?subscribe-broadcast", "count": 500}'
'use strict';
const WebSocket = require('ws');
const readline = require('readline');

const spec = JSON.parse(process.argv[2]);
const PAD = 'x'.repeat(100);
const now = () => performance.timeOrigin + performance.now();

let stats = newStats();
function newStats() { return { received: 0, dups: 0, hist: new Map(), lastMs: 0 }; }

const clients = [];
for (let i = 0; i < spec.count; i++) {
  clients.push({ index: (spec.offset || 0) + i, ws: null, open: false, lastSeq: -1, onEcho: null });
}

function onMessage(client, data) {
  const text = typeof data === 'string' ? data : data.toString('latin1', 0, Math.min(data.length, 40));
  const a = text.indexOf(' ');
  const b = text.indexOf(' ', a + 1);
  if (a < 0 || b < 0) return; // a heartbeat, or anything not ours
  const seq = +text.slice(0, a);
  const sent = +text.slice(a + 1, b);
  if (Number.isNaN(seq) || Number.isNaN(sent)) return;
  const t = now();
  stats.received++;
  if (seq <= client.lastSeq) stats.dups++;
  client.lastSeq = seq;
  const bucket = Math.floor((t - sent) * 10);
  stats.hist.set(bucket, (stats.hist.get(bucket) || 0) + 1);
  stats.lastMs = t;
  if (client.onEcho) { const f = client.onEcho; client.onEcho = null; f(); }
}

function connect(client) {
  return new Promise((resolve) => {
    const path = spec.path.replace('{i}', String(client.index));
    const ws = new WebSocket(`ws://${spec.host}:${spec.port}${path}`, {
      perMessageDeflate: false, origin: `http://${spec.host}:${spec.port}`, handshakeTimeout: 10000,
    });
    client.ws = ws;
    ws.on('open', () => { client.open = true; resolve(null); });
    ws.on('message', (data) => onMessage(client, data));
    ws.on('close', () => { client.open = false; resolve('closed during the handshake'); });
    ws.on('error', (err) => { client.open = false; resolve(String(err && err.message)); });
  });
}

async function connectAll() {
  const errors = [];
  let failed = 0;
  let next = 0;
  const worker = async () => {
    while (next < clients.length) {
      const err = await connect(clients[next++]);
      if (err !== null) { failed++; if (errors.length < 3) errors.push(err); }
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency || 50 }, worker));
  return { event: 'ready', opened: clients.length - failed, failed, errors };
}

const openCount = () => clients.reduce((n, c) => n + (c.open ? 1 : 0), 0);
function report() {
  return { received: stats.received, dups: stats.dups, open: openCount(),
    hist: Object.fromEntries(stats.hist), last_ms: stats.lastMs };
}

async function publish(client, messages, deadline) {
  let sent = 0;
  for (let seq = 0; seq < messages; seq++) {
    if (!client.open || now() > deadline) break;
    const echoed = new Promise((resolve) => {
      client.onEcho = resolve;
      setTimeout(resolve, Math.max(0, deadline - now())).unref();
    });
    client.ws.send(`${seq} ${now().toFixed(3)} ${PAD}`);
    sent++;
    await echoed;
  }
  return sent;
}

async function handle(cmd) {
  switch (cmd.cmd) {
    case 'count': return { received: stats.received, open: openCount() };
    case 'reset': stats = newStats(); clients.forEach((c) => { c.lastSeq = -1; }); return { ok: true };
    case 'report': return report();
    case 'publish': {
      const deadline = now() + (cmd.timeout || 60) * 1000;
      const sent = await Promise.all(clients.filter((c) => c.open).map((c) => publish(c, cmd.messages, deadline)));
      return { sent: sent.reduce((a, b) => a + b, 0), ...report() };
    }
    case 'close': clients.forEach((c) => { if (c.ws) c.ws.terminate(); }); return { ok: true };
    default: return { error: `unknown command ${cmd.cmd}` };
  }
}

const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

(async () => {
  say(await connectAll());
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const cmd = JSON.parse(line);
    say(await handle(cmd));
    if (cmd.cmd === 'close') process.exit(0);
  }
  process.exit(0);
})();
