// cohrt-sync-delivery.js: exactly-once, in-order delivery of one channel's messages.
//
// The browser twin of cohrt_sync.delivery.DeliveryLedger (docs/client.md,
// "Reconnect and exactly-once catch-up"): the channel hands it every live
// message and, after each reconnect, asks it to recover what history holds
// past the cursor. Each persisted message is emitted once, in id order,
// whether it came live, from history or both. With ids on live frames a
// window of seen ids decides; without (the cloud's frames) content
// fingerprints are matched against history rows.

/** How many delivered ids are remembered to drop a repeat. */
const DEDUPE_WINDOW = 10000;
/** Id-less live messages kept before they are reconciled with history. */
const PENDING_COMPACT_AT = 2000;

// JSON with sorted keys: a history row and the live frame of the same message
// must give the same fingerprint.
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value === undefined ? null : value);
}

export function fingerprint(msg) {
  return `${msg.created_at_ms}\u001f${msg.event}\u001f${canonical(msg.data)}`;
}

/** A counted set of fingerprints. */
class Multiset {
  constructor() { this.counts = new Map(); }
  add(key) { this.counts.set(key, (this.counts.get(key) || 0) + 1); }
  take(key) {
    const n = this.counts.get(key) || 0;
    if (n <= 0) return false;
    if (n === 1) this.counts.delete(key); else this.counts.set(key, n - 1);
    return true;
  }
  get size() { return this.counts.size; }
  clear() { this.counts.clear(); }
}

/** Which messages of one channel are emitted, so that each is emitted once. */
export class Ledger {
  /**
   * @param {(after: number) => AsyncIterable<object>} rows persisted messages with id > after.
   * @param {(msg: object) => void} emit delivers one message.
   * @param {(err: Error) => void} onError a failed reconciliation (delivery goes on).
   */
  constructor(rows, emit, onError) {
    this.rows = rows;
    this.emit = emit;
    this.onError = onError;
    /** Highest persisted id delivered: where the next recovery starts. */
    this.lastId = null;
    /** Epoch ms the subscription began; without a cursor, older rows are not missed. */
    this.openedAtMs = Date.now();
    this._seen = new Set();
    this._idsSeen = false;
    this._pending = []; // id-less messages delivered live: {fp, created}
    this._replayed = new Multiset();
    this._replayedUntil = 0;
    this._compacting = false;
  }

  remember(id) {
    this._seen.add(id);
    if (this._seen.size > DEDUPE_WINDOW) this._seen.delete(this._seen.values().next().value);
    if (this.lastId === null || id > this.lastId) this.lastId = id;
  }

  /** A message received live: emitted unless it was delivered already. */
  live(msg) {
    if (msg.id !== null) {
      if (!this._idsSeen) { this._idsSeen = true; this._pending = []; }
      if (this._seen.has(msg.id)) return;
      this.remember(msg.id);
      this.emit(msg);
      return;
    }
    if (this._idsSeen) { this.emit(msg); return; } // never persisted
    const fp = fingerprint(msg);
    if (this._replayed.size) {
      if (msg.created_at_ms !== null && msg.created_at_ms > this._replayedUntil) this._replayed.clear();
      else if (this._replayed.take(fp)) return; // the catch-up delivered it already
    }
    this._pending.push({ fp, created: msg.created_at_ms || 0 });
    this.emit(msg);
    if (this._pending.length >= PENDING_COMPACT_AT && !this._compacting) this.compact();
  }

  // Deliver what history holds past the cursor and the socket did not: runs
  // while the new socket's frames wait, so missed messages come first.
  async recover(isClosed = () => false) {
    this._replayed.clear();
    this._replayedUntil = 0;
    const live = new Multiset();
    for (const p of this._pending) live.add(p.fp);
    const minCreated = this.lastId === null ? this.openedAtMs : null;
    for await (const item of this.rows(this.lastId || 0)) {
      if (isClosed()) return;
      if (item.id === null || this._seen.has(item.id)) continue;
      this.remember(item.id);
      const fp = fingerprint(item);
      if (live.take(fp)) continue; // delivered live before the drop
      if (minCreated !== null && (item.created_at_ms || 0) < minCreated) continue;
      this._replayed.add(fp);
      this._replayedUntil = Math.max(this._replayedUntil, item.created_at_ms || 0);
      this.emit(item);
    }
    // Every message received live was committed before it was broadcast, so
    // pending ones history did not hold were never persisted.
    this._pending = [];
  }

  // Give id-less live deliveries their ids by matching history, so memory stays bounded.
  async compact() {
    this._compacting = true;
    try {
      const live = new Multiset();
      for (const p of this._pending) live.add(p.fp);
      const matched = new Multiset();
      let lastMatch = null;
      for await (const item of this.rows(this.lastId || 0)) {
        if (this._seen.has(item.id)) continue;
        const fp = fingerprint(item);
        if (!live.take(fp)) break; // its frame is still on the way
        matched.add(fp);
        this.remember(item.id);
        lastMatch = item.created_at_ms || 0;
      }
      this._pending = this._pending.filter(
        (p) => !matched.take(p.fp) && (lastMatch === null || p.created >= lastMatch));
    } catch (e) {
      this.onError(e);
    } finally {
      if (this._pending.length > PENDING_COMPACT_AT) this._pending = this._pending.slice(-PENDING_COMPACT_AT / 2);
      this._compacting = false;
    }
  }
}
