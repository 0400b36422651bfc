#!/usr/bin/env node
// rtm node-baseline: a Node.js + `ws` server speaking a subset of RTM wire protocol v1
// (docs/protocol.md), written the way a competent Node developer would write it. It is
// the yardstick the Rust server (`rtm-tui serve`) is benchmarked against, so it is kept
// honest: idiomatic and reasonably efficient (in-memory Maps, every channel event
// serialized once and the same string sent to each member), with no write coalescing or
// other tricks, and nothing slowed down on purpose.
//
// Implemented, with docs/protocol.md's codes:
//   login (open mode: any well-formed app id, tokens are not checked; remote login kicks
//   the older connection), logout, ping, send_peer (reply 0 only after the receiver's
//   `ack` notice; 2 after 10 s without one; 3 offline; 4 cached in memory with
//   offline: true and delivered after the receiver's next login), ack, join (20-channel
//   cap), leave, send_channel (not echoed), get_members (at most 512),
//   get_channel_member_count, member_joined / member_left (not for channels over 512),
//   member_count_updated (at most once per second per channel), history (last 1000
//   messages per peer pair and per channel, in memory), newline-separated batches, the
//   `error` event for unusable objects (1008 after 100), close 1009 for an object over
//   64 KiB, a WebSocket Ping at least every 15 s and a drop after 30 s of silence.
// Not implemented (answered with code 1, "unknown op"): renew_token, presence, user and
// channel attributes, invitations. No tokens, no rate limits, no persistence, and no 30 s
// grace: a dropped connection leaves its channels at once (others get member_left).
//
// Run:
//   cd benches/node-baseline && npm install --no-audit --no-fund
//   node server.js --listen 127.0.0.1:7420     # or --listen 127.0.0.1:0 for any free port
// (or RTM_LISTEN=host:port). Once bound it prints one line, `listening on HOST:PORT`, and
// serves ws://HOST:PORT/rtm/v1; every other path is 404.

'use strict';

const http = require('node:http');
const { WebSocketServer } = require('ws');

const SERVER_NAME = `node-baseline/${require('./package.json').version} (ws/${require('ws/package.json').version})`;
const PATH = '/rtm/v1';
const MAX_FRAME_BYTES = 1024 * 1024;
const MAX_OBJECT_BYTES = 64 * 1024;
const MAX_MESSAGE_BYTES = 32 * 1024;
const ACK_TIMEOUT_MS = 10_000;
const PING_EVERY_MS = 15_000;
const DEAD_AFTER_MS = 30_000;
const SWEEP_MS = 5000; // liveness is checked this often
const MAX_CHANNELS_PER_USER = 20;
const MAX_MEMBER_EVENTS = 512; // no member_joined/left above this, get_members lists at most this
const MAX_COUNT_CHANNELS = 32;
const COUNT_EVENT_MIN_GAP_MS = 1000;
const HISTORY_PER_CONVERSATION = 1000;
const OFFLINE_CACHE_PER_USER = 200;
const OFFLINE_CACHE_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
const MAX_ERRORS = 100;

// ---------------------------------------------------------------------------------------
// Validation

const APP_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const ID_RE = /^[A-Za-z0-9 !#$%&()+\-:;<=.>?@[\]^_{}|~,]{1,64}$/;
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

function validId(id) {
  return typeof id === 'string' && ID_RE.test(id) && id[0] !== ' ' && id !== 'null';
}

// Returns the message as it will be forwarded and stored, or null if it is invalid.
function parseMessage(m) {
  if (m === null || typeof m !== 'object') return null;
  if (m.type === 'text') {
    const text = m.text;
    if (typeof text !== 'string' || text.length === 0) return null;
    if (text.length > MAX_MESSAGE_BYTES / 3 && Buffer.byteLength(text) > MAX_MESSAGE_BYTES) return null;
    return { type: 'text', text };
  }
  if (m.type === 'raw') {
    const { data } = m;
    const description = m.description === undefined ? '' : m.description;
    if (typeof data !== 'string' || typeof description !== 'string') return null;
    if (data.length % 4 !== 0 || !BASE64_RE.test(data)) return null;
    const padding = data.endsWith('==') ? 2 : data.endsWith('=') ? 1 : 0;
    const size = (data.length / 4) * 3 - padding + Buffer.byteLength(description);
    if (size === 0 || size > MAX_MESSAGE_BYTES) return null;
    return { type: 'raw', data, description };
  }
  return null;
}

const isCount = (v) => Number.isSafeInteger(v) && v >= 0;

// ---------------------------------------------------------------------------------------
// State (all in memory)

let lastMessageId = 0; // one counter for every conversation of every app
const nextMessageId = () => ++lastMessageId;

const users = new Map(); // "app\0user" -> Session currently logged in as that user
const channels = new Map(); // "app\0channel" -> Channel with at least one member
const history = new Map(); // "app\0c\0channel" or "app\0p\0userA\0userB" -> [{message_id, from, message, server_ts}]
const offlineCache = new Map(); // "app\0user" -> [{from, message, message_id, server_ts}]
const pendingAcks = new Map(); // message_id -> {sender, requestId, receiverKey, serverTs, timer}
const sessions = new Set(); // every open connection

class Session {
  constructor(ws) {
    this.ws = ws;
    this.app = null;
    this.user = null;
    this.key = null; // "app\0user" while logged in
    this.channels = new Map(); // channel id -> Channel
    this.errors = 0;
    this.lastSeen = Date.now();
    this.lastPing = this.lastSeen;
  }

  send(obj) {
    this.sendRaw(JSON.stringify(obj));
  }

  sendRaw(text) {
    if (this.ws.readyState === 1) this.ws.send(text);
  }

  reply(id, result) {
    this.send({ id, code: 0, ...result });
  }

  fail(id, code, reason, extra) {
    this.send({ id, code, reason, ...extra });
  }

  error(reason) {
    this.send({ event: 'error', code: 1, reason });
    if (++this.errors >= MAX_ERRORS) this.ws.close(1008, 'too many unusable objects');
  }
}

class Channel {
  constructor(app, id) {
    this.app = app;
    this.id = id;
    this.key = `${app}\0${id}`;
    this.members = new Map(); // user -> Session
    this.lastCountAt = 0;
    this.countTimer = null;
  }

  broadcast(text, except) {
    for (const member of this.members.values()) {
      if (member !== except) member.sendRaw(text);
    }
  }

  // member_count_updated to every member, at most once per second, with the latest count.
  countChanged() {
    if (this.countTimer) return;
    const wait = this.lastCountAt + COUNT_EVENT_MIN_GAP_MS - Date.now();
    if (wait <= 0) {
      this.sendCount();
    } else {
      this.countTimer = setTimeout(() => {
        this.countTimer = null;
        this.sendCount();
      }, wait);
    }
  }

  sendCount() {
    if (this.members.size === 0) return;
    this.lastCountAt = Date.now();
    this.broadcast(JSON.stringify({ event: 'member_count_updated', channel: this.id, count: this.members.size }));
  }
}

function remember(key, entry) {
  let list = history.get(key);
  if (!list) history.set(key, (list = []));
  list.push(entry);
  if (list.length > HISTORY_PER_CONVERSATION) list.shift();
}

const channelHistoryKey = (app, channel) => `${app}\0c\0${channel}`;
const peerHistoryKey = (app, a, b) => (a < b ? `${app}\0p\0${a}\0${b}` : `${app}\0p\0${b}\0${a}`);

// Index of the first entry whose message_id is greater than `id` (entries are in id order).
function upperBound(list, id) {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid].message_id <= id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// ---------------------------------------------------------------------------------------
// Channel membership

function leaveChannel(session, channel) {
  session.channels.delete(channel.id);
  channel.members.delete(session.user);
  if (channel.members.size === 0) {
    clearTimeout(channel.countTimer);
    channels.delete(channel.key);
    return;
  }
  if (channel.members.size < MAX_MEMBER_EVENTS) {
    channel.broadcast(JSON.stringify({ event: 'member_left', channel: channel.id, user: session.user }));
  }
  channel.countChanged();
}

// The user is gone from this connection (logout, remote login, or a dropped connection).
function endLogin(session) {
  if (!session.key) return;
  for (const channel of session.channels.values()) leaveChannel(session, channel);
  if (users.get(session.key) === session) users.delete(session.key);
  session.app = session.user = session.key = null;
}

// ---------------------------------------------------------------------------------------
// Ops

const ops = {
  login(s, id, req) {
    if (s.key) return s.fail(id, 8, 'already logged in');
    const { app_id: app, user } = req;
    if (typeof app !== 'string' || !APP_ID_RE.test(app)) return s.fail(id, 4, 'invalid app id');
    if (!validId(user)) return s.fail(id, 3, 'invalid user id');
    const key = `${app}\0${user}`;
    const older = users.get(key);
    if (older) {
      older.send({ event: 'kicked', reason: 'remote_login' });
      endLogin(older);
      older.ws.close(1000, 'remote_login');
    }
    s.app = app;
    s.user = user;
    s.key = key;
    users.set(key, s);
    s.reply(id, { user, server_ts: Date.now(), protocol: 1, server: SERVER_NAME });
    const cached = offlineCache.get(key);
    if (cached) {
      offlineCache.delete(key);
      const oldest = Date.now() - OFFLINE_CACHE_MAX_AGE_MS;
      for (const m of cached) {
        if (m.server_ts >= oldest) s.send({ event: 'message_from_peer', ...m, offline: true });
      }
    }
  },

  logout(s, id) {
    endLogin(s);
    s.reply(id);
  },

  ping(s, id) {
    s.reply(id, { server_ts: Date.now() });
  },

  send_peer(s, id, req) {
    const { to } = req;
    if (!validId(to)) return s.fail(id, 6, 'invalid user id');
    const message = parseMessage(req.message);
    if (!message) return s.fail(id, 7, 'invalid message');
    const receiverKey = `${s.app}\0${to}`;
    const receiver = users.get(receiverKey);
    if (!receiver && req.offline !== true) return s.fail(id, 3, 'peer unreachable');
    const message_id = nextMessageId();
    const server_ts = Date.now();
    remember(peerHistoryKey(s.app, s.user, to), { message_id, from: s.user, message, server_ts });
    if (!receiver) {
      let cache = offlineCache.get(receiverKey);
      if (!cache) offlineCache.set(receiverKey, (cache = []));
      cache.push({ from: s.user, message, message_id, server_ts });
      if (cache.length > OFFLINE_CACHE_PER_USER) cache.shift();
      return s.fail(id, 4, 'cached by server', { message_id, server_ts });
    }
    const timer = setTimeout(() => {
      pendingAcks.delete(message_id);
      s.fail(id, 2, 'timeout: no ack from the peer');
    }, ACK_TIMEOUT_MS);
    pendingAcks.set(message_id, { sender: s, requestId: id, receiverKey, server_ts, timer });
    receiver.send({ event: 'message_from_peer', from: s.user, message, message_id, server_ts, offline: false });
  },

  ack(s, id, req) {
    const message_id = req.message_id;
    const pending = pendingAcks.get(message_id);
    if (pending && pending.receiverKey === s.key) {
      pendingAcks.delete(message_id);
      clearTimeout(pending.timer);
      pending.sender.reply(pending.requestId, { message_id, server_ts: pending.server_ts });
    }
    if (id !== undefined) s.reply(id);
  },

  join(s, id, req) {
    const name = req.channel;
    if (!validId(name)) return s.fail(id, 3, 'invalid channel id');
    if (s.channels.has(name)) return s.fail(id, 6, 'already joined');
    if (s.channels.size >= MAX_CHANNELS_PER_USER) return s.fail(id, 5, 'exceeds limit of 20 channels');
    const key = `${s.app}\0${name}`;
    let channel = channels.get(key);
    if (!channel) channels.set(key, (channel = new Channel(s.app, name)));
    channel.members.set(s.user, s);
    s.channels.set(name, channel);
    s.reply(id, { member_count: channel.members.size });
    if (channel.members.size <= MAX_MEMBER_EVENTS) {
      channel.broadcast(JSON.stringify({ event: 'member_joined', channel: name, user: s.user }), s);
    }
    channel.countChanged();
  },

  leave(s, id, req) {
    const channel = s.channels.get(req.channel);
    if (!channel) return s.fail(id, 3, 'not in channel');
    leaveChannel(s, channel);
    s.reply(id);
  },

  send_channel(s, id, req) {
    const channel = s.channels.get(req.channel);
    if (!channel) return s.fail(id, 5, 'not in channel');
    const message = parseMessage(req.message);
    if (!message) return s.fail(id, 4, 'invalid message');
    const message_id = nextMessageId();
    const server_ts = Date.now();
    remember(channelHistoryKey(s.app, channel.id), { message_id, from: s.user, message, server_ts });
    channel.broadcast(
      JSON.stringify({ event: 'message_from_channel', channel: channel.id, from: s.user, message, message_id, server_ts }),
      s,
    );
    s.reply(id, { message_id, server_ts });
  },

  get_members(s, id, req) {
    const channel = s.channels.get(req.channel);
    if (!channel) return s.fail(id, 5, 'not in channel');
    const members = [];
    for (const user of channel.members.keys()) {
      if (members.length === MAX_MEMBER_EVENTS) break;
      members.push(user);
    }
    s.reply(id, { members });
  },

  get_channel_member_count(s, id, req) {
    const list = req.channels;
    if (!Array.isArray(list) || list.length === 0 || !list.every(validId)) {
      return s.fail(id, 2, 'channels must be 1..32 valid channel ids');
    }
    if (list.length > MAX_COUNT_CHANNELS) return s.fail(id, 5, 'more than 32 channels');
    const counts = {};
    for (const name of list) counts[name] = channels.get(`${s.app}\0${name}`)?.members.size ?? 0;
    s.reply(id, { counts });
  },

  history(s, id, req) {
    const { peer, channel: name, before, after } = req;
    const limit = req.limit === undefined ? 50 : req.limit;
    if ((peer === undefined) === (name === undefined)) return s.fail(id, 2, 'give one of peer and channel');
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) return s.fail(id, 2, 'limit must be 1..100');
    if ((before !== undefined && !isCount(before)) || (after !== undefined && !isCount(after))) {
      return s.fail(id, 2, 'before and after must be message ids');
    }
    let key;
    if (name !== undefined) {
      if (!validId(name)) return s.fail(id, 2, 'invalid channel id');
      if (!s.channels.has(name)) return s.fail(id, 5, 'not in channel');
      key = channelHistoryKey(s.app, name);
    } else {
      if (!validId(peer)) return s.fail(id, 2, 'invalid user id');
      key = peerHistoryKey(s.app, s.user, peer);
    }
    const list = history.get(key) ?? [];
    // Entries strictly between `after` and `before`: the oldest `limit` when `after` is
    // given, otherwise the newest `limit`.
    const from = after === undefined ? 0 : upperBound(list, after);
    const to = before === undefined ? list.length : upperBound(list, before - 1);
    const messages = to <= from ? [] : after === undefined ? list.slice(Math.max(from, to - limit), to) : list.slice(from, Math.min(to, from + limit));
    s.reply(id, { messages });
  },
};

// ---------------------------------------------------------------------------------------
// Connections

function handleObject(s, text) {
  let req;
  try {
    req = JSON.parse(text);
  } catch {
    return s.error('unparsable JSON');
  }
  if (req === null || typeof req !== 'object' || Array.isArray(req)) return s.error('not a JSON object');
  const { id, op } = req;
  const hasId = Number.isInteger(id) && id >= 1 && id <= 0xffffffff;
  if (!hasId) {
    if (op === 'ack' && id === undefined) return s.key ? ops.ack(s, undefined, req) : undefined;
    return s.error(id === undefined ? 'request without id' : 'unusable id');
  }
  if (op !== 'login' && !s.key) return s.fail(id, 102, 'not logged in');
  const handler = typeof op === 'string' && Object.hasOwn(ops, op) ? ops[op] : undefined;
  if (!handler) return s.fail(id, 1, 'unknown op');
  handler(s, id, req);
}

function onMessage(s, data, isBinary) {
  s.lastSeen = Date.now();
  if (isBinary) return s.error('binary frames are not accepted');
  const frame = data.toString();
  const objects = frame.includes('\n') ? frame.split('\n') : [frame];
  if (data.length > MAX_OBJECT_BYTES && objects.some((o) => Buffer.byteLength(o) > MAX_OBJECT_BYTES)) {
    s.ws.close(1009, 'object over 64 KiB');
    return;
  }
  for (const text of objects) {
    if (s.ws.readyState !== 1) return;
    if (text.trim() !== '') handleObject(s, text);
  }
}

function onConnection(ws) {
  const s = new Session(ws);
  sessions.add(s);
  ws.on('message', (data, isBinary) => onMessage(s, data, isBinary));
  ws.on('ping', () => (s.lastSeen = Date.now()));
  ws.on('pong', () => (s.lastSeen = Date.now()));
  ws.on('error', () => {}); // 'close' follows; nothing else to do
  ws.on('close', () => {
    sessions.delete(s);
    endLogin(s);
  });
}

// Liveness: a WebSocket Ping at least every 15 s (so at most every 10-15 s, given the
// sweep's granularity), and a drop (no close frame) after 30 s without anything received.
function sweep() {
  const now = Date.now();
  for (const s of sessions) {
    if (now - s.lastSeen >= DEAD_AFTER_MS) {
      s.ws.terminate();
    } else if (now - s.lastPing >= PING_EVERY_MS - SWEEP_MS) {
      s.lastPing = now;
      s.ws.ping();
    }
  }
}

// ---------------------------------------------------------------------------------------
// Start

function parseListen() {
  const args = process.argv.slice(2);
  let listen = process.env.RTM_LISTEN || '127.0.0.1:7420';
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--listen' && i + 1 < args.length) listen = args[++i];
    else if (args[i].startsWith('--listen=')) listen = args[i].slice('--listen='.length);
    else if (args[i] === '--help' || args[i] === '-h') {
      console.log('usage: node server.js [--listen HOST:PORT]   (default 127.0.0.1:7420, or $RTM_LISTEN)');
      process.exit(0);
    } else {
      console.error(`unknown argument: ${args[i]}`);
      process.exit(2);
    }
  }
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(listen);
  if (!m) {
    console.error(`--listen wants HOST:PORT, got ${listen}`);
    process.exit(2);
  }
  return { host: m[1], port: Number(m[2]) };
}

function main() {
  const { host, port } = parseListen();
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_FRAME_BYTES });
  wss.on('connection', onConnection);

  const server = http.createServer((req, res) => {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  server.on('upgrade', (req, socket, head) => {
    const path = req.url.split('?', 1)[0];
    if (path !== PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  setInterval(sweep, SWEEP_MS).unref();
  server.listen(port, host, () => {
    const addr = server.address();
    const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    console.log(`listening on ${shown}:${addr.port}`);
  });
  const stop = () => {
    for (const s of sessions) s.ws.close(1001, 'server shutting down');
    server.close();
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main();
