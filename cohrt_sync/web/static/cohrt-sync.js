// cohrt-sync.js: the browser client of cohrt_sync's web routes, Flask or Django (an ES module,
// no dependencies).
//
// The JavaScript twin of the Python Channel's guarantees: a connection token
// from the token route (the application key stays on the server), a presence
// map kept by join/leave, publish acknowledged over the socket, reconnect with
// backoff, jitter and a fresh token every time, and catch-up from the history
// route after a drop: every persisted message exactly once, in id order,
// whether live frames carry ids or not (docs/client.md, "Reconnect and
// exactly-once catch-up"). The API is documented in docs/flask.md and docs/django.md.
//
//   import { subscribe } from "/realtime/cohrt-sync.js";
//   const ch = await subscribe("chat:lobby", { onMessage(msg) { ... } });

import { Ledger } from "./cohrt-sync-delivery.js";

const PAGE = 100;

/** An error from a route, a socket or a publish. */
export class CohrtError extends Error {
  /**
   * @param {string} message one line: what happened, what to do next.
   * @param {{status?: number|null, code?: string|null, retryAfter?: number|null}} [info]
   */
  constructor(message, { status = null, code = null, retryAfter = null } = {}) {
    super(message);
    this.name = "CohrtError";
    /** HTTP status of a route's answer, or null. */
    this.status = status;
    /** The error envelope's status name ("RESOURCE_EXHAUSTED" ...), or null. */
    this.code = code;
    /** Seconds to wait from Retry-After, or null. */
    this.retryAfter = retryAfter;
  }
}

// Django's CSRF token, from its `csrftoken` cookie, for POSTs to this page's
// own origin; nothing when the cookie is absent or unreadable (HttpOnly,
// CSRF_USE_SESSIONS: pass `headers: {"X-CSRFToken": ...}` then). Another
// framework ignores the header. An explicit `headers` option wins.
function csrfHeader(url) {
  if (url.origin !== window.location.origin || typeof document === "undefined") return {};
  for (const part of document.cookie.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === "csrftoken") {
      const value = decodeURIComponent(part.slice(eq + 1).trim());
      return value ? { "X-CSRFToken": value } : {};
    }
  }
  return {};
}

function toMessage(raw, channel) {
  const event = raw.event || raw.action || "message";
  return {
    channel: raw.channel || channel,
    event,
    action: raw.action || event,
    data: raw.data === undefined ? null : raw.data,
    created_at_ms: typeof raw.created_at_ms === "number" ? raw.created_at_ms : null,
    id: Number.isInteger(raw.id) ? raw.id : null,
  };
}

function toUser(raw) {
  const user = raw && typeof raw === "object" ? raw : { id: raw };
  return { id: String(user.id), name: user.name == null ? null : String(user.name) };
}

// A frame that carries `data` is a message, whatever its action says: the
// spec makes a message's action equal to its event, and any event name is
// allowed, so another user's message may be called "published" or "join".
// Such a frame never settles a publish and never changes presence.
function isMessage(frame) {
  return Object.prototype.hasOwnProperty.call(frame, "data");
}

// The user a join or leave frame names; null when it names none.
function frameUser(frame) {
  const raw = frame.user;
  if (!raw || typeof raw !== "object" || (typeof raw.id !== "string" && typeof raw.id !== "number")) {
    return null;
  }
  return toUser(raw);
}

/**
 * Open a channel through the web routes; resolves once the socket is subscribed.
 * Rejects with a CohrtError when the token route or the socket refuses.
 *
 * @param {string} channel the channel name.
 * @param {object} [options] see Channel.
 * @returns {Promise<Channel>}
 */
export async function subscribe(channel, options = {}) {
  const ch = new Channel(channel, options);
  await ch._open();
  return ch;
}

/** One channel: presence, publish, live messages with catch-up, reconnects. */
export class Channel {
  /**
   * @param {string} name the channel.
   * @param {object} [options]
   * @param {string} [options.prefix="/realtime"] where the routes live (Flask blueprint, Django urls).
   * @param {(msg: object) => void} [options.onMessage] every publication, once, in order:
   *   {channel, event, action, data, created_at_ms, id} (id null when unknown).
   * @param {(user: object) => void} [options.onJoin] a user's first socket opened.
   * @param {(user: object, lastSeen: string|null) => void} [options.onLeave] a user's last socket closed.
   * @param {(presence: Map) => void} [options.onPresence] the presence map changed.
   * @param {(state: string) => void} [options.onStatus] "open" | "reconnecting" | "closed".
   * @param {(err: CohrtError) => void} [options.onError] a failed reconnect or an unmatched error frame.
   * @param {object} [options.headers] extra headers for the routes (a CSRF token ...).
   * @param {{initial?: number, max?: number, jitter?: number}} [options.backoff]
   *   reconnect waits in ms: initial 500, doubling up to max 30000, minus up to jitter 0.5 of it.
   * @param {number} [options.ackTimeout=10000] ms a socket publish waits for its ack.
   * @param {number} [options.connectTimeout=10000] ms for the socket to be subscribed.
   * @param {number} [options.typingInterval=2000] ms between two typing() publishes.
   */
  constructor(name, options = {}) {
    this.name = name;
    this.prefix = (options.prefix || "/realtime").replace(/\/+$/, "");
    this.options = options;
    this.headers = options.headers || {};
    /** @type {Map<string, {id: string, name: string|null}>} user id -> user */
    this.presence = new Map();
    /** The logged-in user, as the token route saw them. */
    this.user = null;
    /** "connecting" | "open" | "reconnecting" | "closed" */
    this.status = "connecting";
    /** Persisted messages with id <= startId came before this subscription (scrollback). */
    this.startId = null;
    /** How many times the socket was reopened after a drop. */
    this.reconnects = 0;
    this.closed = false;
    this._ws = null;
    this._hold = true; // frames wait in _buffer while a catch-up runs
    this._buffer = [];
    this._acks = [];
    this._ledger = new Ledger(
      (after) => this._rows(after), (msg) => this._call("onMessage", msg), (e) => this._error(e));
    this._recovery = Promise.resolve();
    this._wake = null;
    this._lastTyping = 0;
  }

  // -- routes -------------------------------------------------------------------
  async _request(method, path, { query = null, body = null, headers = {} } = {}) {
    const url = new URL(`${this.prefix}/${path}`, window.location.href);
    for (const [k, v] of Object.entries(query || {})) url.searchParams.set(k, String(v));
    const init = {
      method,
      credentials: "same-origin",
      cache: "no-store",
      headers: {
        ...(body ? { "Content-Type": "application/json" } : {}),
        ...(method === "POST" ? csrfHeader(url) : {}),
        ...this.headers,
        ...headers,
      },
    };
    if (body) init.body = JSON.stringify(body);
    let resp;
    try {
      resp = await fetch(url, init);
    } catch (e) {
      throw new CohrtError(`${method} ${url.pathname} failed: ${e.message}; check the network`);
    }
    let payload = null;
    try { payload = await resp.json(); } catch (e) { payload = null; }
    if (!resp.ok) {
      const err = (payload && payload.error) || {};
      const after = Number(resp.headers.get("Retry-After"));
      throw new CohrtError(err.message || `${method} ${url.pathname} answered HTTP ${resp.status}`, {
        status: resp.status,
        code: err.status || null,
        retryAfter: Number.isFinite(after) && after > 0 ? after : null,
      });
    }
    return payload;
  }

  /**
   * Persisted messages, oldest first, as an array of messages shaped as
   * onMessage receives them (the history route's `items`).
   *
   * {after, limit}: the page of at most `limit` (50, at most 100) messages
   * with id > after (0). {newest: N}: the channel's newest N (1 to 100),
   * whatever their ids; ids count across the whole tenant, so a channel's
   * ids increase but are not consecutive.
   *
   * @param {{after?: number, limit?: number, newest?: number}} [which]
   * @returns {Promise<object[]>}
   */
  async history({ after = 0, limit = 50, newest = null } = {}) {
    const query = newest !== null && newest !== undefined
      ? { channel: this.name, newest }
      : { channel: this.name, after, limit };
    const r = await this._request("GET", "history", { query });
    return (r.items || []).map((item) => toMessage(item, this.name));
  }

  // -- connecting -----------------------------------------------------------------
  async _open() {
    try {
      await this._connect(true);
    } catch (e) {
      this._shut("closed");
      throw e;
    }
  }

  // Mint a token, open the socket, catch up; true once this socket is the open one.
  async _connect(first) {
    const tok = await this._request("POST", "token", { body: { channel: this.name } });
    if (this.closed) throw new CohrtError(`channel ${this.name} closed`);
    this.user = tok.user ? toUser(tok.user) : null;
    const ws = new WebSocket(tok.url);
    this._ws = ws;
    this._hold = true;
    this._buffer = [];
    await new Promise((resolve, reject) => {
      let subscribed = false;
      const timer = setTimeout(() => {
        reject(new CohrtError(`no 'subscribed' on ${this.name} within ${this._timeout("connectTimeout")} ms`));
        ws.close();
      }, this._timeout("connectTimeout"));
      ws.onmessage = (ev) => {
        let frame;
        try { frame = JSON.parse(ev.data); } catch (e) { return; }
        if (!frame || typeof frame !== "object") return;
        if (subscribed) { this._frame(ws, frame); return; }
        if (isMessage(frame)) return; // nothing is published to a socket before `subscribed`
        if (frame.action === "subscribed") {
          subscribed = true;
          clearTimeout(timer);
          const users = Array.isArray(frame.presence) ? frame.presence : [];
          this._resyncPresence(users.filter((u) => u != null).map(toUser), first);
          resolve();
        } else if (frame.error !== undefined && frame.action === undefined) {
          clearTimeout(timer);
          reject(new CohrtError(String(frame.error)));
          ws.close();
        }
      };
      ws.onclose = (ev) => {
        if (!subscribed) {
          clearTimeout(timer);
          reject(new CohrtError(`the socket of ${this.name} closed before subscribing (code ${ev.code})`));
        } else {
          this._dropped(ws);
        }
      };
      ws.onerror = () => {}; // a close event follows, with what little the browser tells
    });
    try {
      if (first) {
        // Taken after subscribing: every later row was committed while the socket listened.
        const r = await this._request("GET", "history", { query: { channel: this.name, latest: 1, limit: 1 } });
        this.startId = Number.isInteger(r.last_id) ? r.last_id : 0;
        if (this._ledger.lastId === null) this._ledger.lastId = this.startId;
      } else {
        // One recovery at a time: a socket that drops during its catch-up
        // stops that walk, and the next one starts where it got to.
        const run = this._recovery.then(() => this._ledger.recover(() => this.closed || ws !== this._ws));
        this._recovery = run.catch(() => {});
        await run;
      }
    } catch (e) {
      if (ws !== this._ws) return false; // it dropped meanwhile: another attempt owns the channel
      ws.onclose = null;
      ws.close();
      throw e;
    }
    if (ws !== this._ws || this.closed) return false;
    this._release();
    this._setStatus("open");
    return true;
  }

  _timeout(name) {
    const defaults = { connectTimeout: 10000, ackTimeout: 10000, typingInterval: 2000 };
    const v = this.options[name];
    return typeof v === "number" && v >= 0 ? v : defaults[name];
  }

  _backoff(attempt) {
    const b = this.options.backoff || {};
    const initial = b.initial ?? 500, max = b.max ?? 30000, jitter = b.jitter ?? 0.5;
    const base = Math.min(max, initial * 2 ** attempt);
    return base * (1 - jitter * Math.random());
  }

  _sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this._wake = null; resolve(); }, ms);
      this._wake = () => { clearTimeout(timer); this._wake = null; resolve(); };
    });
  }

  _dropped(ws) {
    if (ws !== this._ws) return;
    this._ws = null;
    this._hold = true;
    this._failAcks("the connection dropped before the ack: the publish may or may not have been applied");
    if (this.closed) return;
    this._setStatus("reconnecting");
    this._reconnect();
  }

  async _reconnect() {
    let retryAfter = null;
    for (let attempt = 0; !this.closed; attempt += 1) {
      await this._sleep(retryAfter !== null ? retryAfter * 1000 : this._backoff(attempt));
      if (this.closed) return;
      try {
        if (await this._connect(false)) this.reconnects += 1;
        return;
      } catch (e) {
        if (this.closed) return;
        this._error(e);
        if (e.status === 401 || e.status === 403) { this._shut("closed"); return; }
        retryAfter = e.retryAfter ?? null;
      }
    }
  }

  // -- frames ---------------------------------------------------------------------
  _frame(ws, frame) {
    if (ws !== this._ws) return;
    if (this._hold) { this._buffer.push(frame); return; }
    if (isMessage(frame)) { this._ledger.live(toMessage(frame, this.name)); return; }
    const action = frame.action;
    if (action === "published") { this._settle(null, frame); return; }
    if (frame.error !== undefined && action === undefined) {
      this._settle(new CohrtError(String(frame.error)), null);
      return;
    }
    if (action === "join") {
      const user = frameUser(frame);
      if (user && !this.presence.has(user.id)) {
        this.presence.set(user.id, user);
        this._call("onJoin", user);
        this._call("onPresence", this.presence);
      }
      return;
    }
    if (action === "leave") {
      const user = frameUser(frame);
      if (user && this.presence.delete(user.id)) {
        this._call("onLeave", user, frame.last_seen ?? null);
        this._call("onPresence", this.presence);
      }
      return;
    }
  }

  _release() {
    this._hold = false;
    const frames = this._buffer;
    this._buffer = [];
    const ws = this._ws;
    for (const f of frames) this._frame(ws, f);
  }

  _resyncPresence(users, first) {
    const old = this.presence;
    this.presence = new Map(users.map((u) => [u.id, u]));
    if (!first) {
      for (const [id, u] of old) if (!this.presence.has(id)) this._call("onLeave", u, null);
      for (const [id, u] of this.presence) if (!old.has(id)) this._call("onJoin", u);
    }
    this._call("onPresence", this.presence);
  }

  _call(name, ...args) {
    const fn = this.options[name];
    if (typeof fn !== "function") return;
    try {
      fn.apply(this, args);
    } catch (e) {
      // A failing callback is reported and never stops the channel.
      console.error(`cohrt-sync: ${name} failed on ${this.name}`, e);
    }
  }

  _error(err) {
    if (typeof this.options.onError === "function") this._call("onError", err);
    else console.warn(`cohrt-sync: ${this.name}: ${err.message}`);
  }

  _setStatus(state) {
    if (this.status === state) return;
    this.status = state;
    this._call("onStatus", state);
  }

  // Every persisted message with id > after, page by page.
  async* _rows(after) {
    for (;;) {
      const page = await this.history({ after, limit: PAGE });
      for (const item of page) yield item;
      if (page.length < PAGE || page[page.length - 1].id <= after) return;
      after = page[page.length - 1].id;
    }
  }

  /** Highest persisted id delivered: where the next catch-up starts. */
  get lastId() {
    return this._ledger.lastId;
  }

  // -- publishing -----------------------------------------------------------------
  _settle(err, frame) {
    const slot = this._acks.shift();
    if (!slot) {
      if (err) this._error(err);
      return;
    }
    clearTimeout(slot.timer);
    if (slot.done) return; // timed out already; its place in the FIFO is used up
    if (err) { slot.reject(err); return; }
    // The ack describes the published message, as the publish route's does:
    // its action is the message's action, which the API makes equal to its event.
    slot.resolve({
      channel: frame.channel || this.name,
      event: slot.event,
      action: slot.event,
      created_at_ms: frame.created_at_ms ?? null,
      id: Number.isInteger(frame.id) ? frame.id : null,
    });
  }

  _failAcks(message) {
    const slots = this._acks;
    this._acks = [];
    for (const slot of slots) {
      clearTimeout(slot.timer);
      if (!slot.done) slot.reject(new CohrtError(message));
    }
  }

  /**
   * Publish on the channel; resolves with the ack {channel, event, action, created_at_ms, id}.
   *
   * Over the socket by default (acknowledged in order by the server). With
   * via: "server" it goes through the publish route, which stamps data.sender
   * with the logged-in user: use that when receivers must know who sent it.
   *
   * @param {object} data the JSON payload (an object for via: "server").
   * @param {{event?: string, persist?: boolean, via?: "socket"|"server"}} [opts]
   * @returns {Promise<object>}
   */
  publish(data, { event = "message", persist = true, via = "socket" } = {}) {
    if (this.closed) return Promise.reject(new CohrtError(`channel ${this.name} is closed`));
    if (via === "server") {
      return this._request("POST", "publish", { body: { channel: this.name, event, data, persist } });
    }
    const ws = this._ws;
    if (!ws || this.status !== "open" || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new CohrtError(
        `channel ${this.name} is ${this.status}: publish again once onStatus says "open"`));
    }
    const frame = { action: "publish", event, data };
    if (!persist) frame.persist = false;
    return new Promise((resolve, reject) => {
      const slot = { resolve, reject, event, done: false, timer: null };
      slot.timer = setTimeout(() => {
        slot.done = true;
        reject(new CohrtError(`no ack for a publish on ${this.name} within ${this._timeout("ackTimeout")} ms`));
      }, this._timeout("ackTimeout"));
      this._acks.push(slot);
      ws.send(JSON.stringify(frame));
    });
  }

  /**
   * Say "I am typing": a non-persisted "typing" event through the publish
   * route (so data.sender is verified), at most once per typingInterval.
   * @returns {Promise<object|null>} the ack, or null when throttled.
   */
  typing() {
    const now = Date.now();
    if (now - this._lastTyping < this._timeout("typingInterval")) return Promise.resolve(null);
    this._lastTyping = now;
    return this.publish({}, { event: "typing", persist: false, via: "server" });
  }

  /** Close the socket and stop reconnecting; pending publishes are rejected. */
  close() {
    this._shut("closed");
  }

  _shut(state) {
    if (this.closed) return;
    this.closed = true;
    if (this._wake) this._wake();
    this._failAcks(`channel ${this.name} closed before the ack`);
    const ws = this._ws;
    this._ws = null;
    if (ws) { ws.onclose = null; ws.close(1000); }
    this.presence = new Map();
    this._setStatus(state);
  }
}
