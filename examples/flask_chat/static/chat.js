// flask_chat's page: one room (or DM) channel, the user's private inbox, presence, typing.
import { subscribe } from "/realtime/cohrt-sync.js";

const cfg = JSON.parse(document.getElementById("config").textContent);
// Every POST proves it comes from this page (app.py checks it).
const headers = { "X-CSRF-Token": cfg.csrf };
const $ = (id) => document.getElementById(id);
const typists = new Map(); // user id -> timer that clears the indicator
const dms = new Map(); // user id -> {name, channel}
// What the page delivered, in order (the browser test reads it).
window.chatLog = [];
let current = null; // the open room or DM channel

// What a message says, read defensively: anyone who may publish on the
// channel can send any JSON (data: null, text: {toString: 1} ...), and one
// odd message must never stop the page from showing the rest.
function fields(msg) {
  const data = msg.data !== null && typeof msg.data === "object" ? msg.data : {};
  const s = data.sender;
  const sender = s !== null && typeof s === "object" && typeof s.id === "string"
    ? { id: s.id, name: typeof s.name === "string" ? s.name : null }
    : null;
  return { text: typeof data.text === "string" ? data.text : null, sender };
}

function render(msg) {
  const { text, sender } = fields(msg);
  const li = document.createElement("li");
  if (msg.id !== null) li.dataset.id = String(msg.id);
  const who = document.createElement("span");
  who.className = "who claim";
  // The publish route stamps data.sender with the logged-in user, but anyone
  // holding a token can publish over the socket with any sender, and the two
  // look the same here: the name is the message's claim, marked "~".
  who.textContent = `~${sender ? sender.name || sender.id : "?"}`;
  who.title = "the name this message gives itself: not verified";
  const body = document.createElement("span");
  body.textContent = text ?? "(a message this page cannot show)";
  li.append(who, body);
  return li;
}

function line(msg) {
  const li = render(msg);
  $("messages").append(li);
  li.scrollIntoView({ block: "end" });
}

function showPresence(presence) {
  const ul = $("presence");
  ul.replaceChildren();
  for (const user of presence.values()) {
    const li = document.createElement("li");
    li.dataset.id = user.id;
    li.textContent = user.name || user.id;
    if (user.id === cfg.me.id) { li.className = "me"; li.textContent += " (you)"; }
    else li.onclick = () => openDm(user.id, user.name);
    ul.append(li);
  }
}

function showTyping() {
  const names = [...typists.keys()].map((id) => (current.presence.get(id) || { name: id }).name);
  $("typing").textContent = names.length ? `${names.join(", ")} typing…` : "";
}

function onMessage(msg) {
  const { text, sender } = fields(msg);
  if (msg.event === "typing") {
    const who = sender;
    if (!who || who.id === cfg.me.id) return;
    clearTimeout(typists.get(who.id));
    typists.set(who.id, setTimeout(() => { typists.delete(who.id); showTyping(); }, 3000));
    showTyping();
    return;
  }
  if (msg.event !== "message") return;
  window.chatLog.push({ id: msg.id, text, sender });
  if (sender) { clearTimeout(typists.get(sender.id)); typists.delete(sender.id); showTyping(); }
  line(msg);
}

// Scrollback: the last 50 messages persisted before this subscription (id <=
// startId), in one request: the channel's newest 100, minus those that came
// live since (fewer than 50 older ones only if over 50 arrived meanwhile).
async function scrollback(ch) {
  const newest = await ch.history({ newest: 100 });
  const older = newest.filter((m) => m.id <= ch.startId && m.event === "message");
  // Live messages may be on screen already: the older ones go above them.
  $("messages").prepend(...older.slice(-50).map(render));
}

async function open(channel, title) {
  if (current) current.close();
  $("messages").replaceChildren();
  typists.clear();
  $("title").textContent = title;
  window.chatLog = [];
  current = await subscribe(channel, {
    prefix: cfg.prefix,
    headers,
    onMessage,
    onPresence: showPresence,
    onStatus(state) { $("status").textContent = state; },
  });
  $("status").textContent = current.status;
  window.chatChannel = current;
  await scrollback(current);
}

async function openDm(uid, name) {
  const r = await fetch(`/dm/${encodeURIComponent(uid)}`, { method: "POST", headers });
  if (!r.ok) return;
  const { channel } = await r.json();
  dms.set(uid, { name, channel });
  showDms();
  await open(channel, `DM with ${name || uid}`);
}

function showDms() {
  const ul = $("dms");
  ul.replaceChildren();
  for (const [uid, dm] of dms) {
    const li = document.createElement("li");
    li.dataset.id = uid;
    li.textContent = dm.name || uid;
    li.onclick = () => open(dm.channel, `DM with ${dm.name || uid}`);
    ul.append(li);
  }
}

$("send").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = $("text").value.trim();
  if (!text || !current) return;
  $("text").value = "";
  // Through the server route: it stamps data.sender with the logged-in user.
  await current.publish({ text }, { via: "server" });
});
$("text").addEventListener("input", () => { if (current && $("text").value) current.typing(); });

// The private inbox: other users' DM invitations, sent by the server.
async function start() {
  const inbox = await subscribe(cfg.inbox, {
    prefix: cfg.prefix,
    headers,
    onMessage(msg) {
      // Only the server publishes here (the inbox's name is private to its owner).
      const { sender } = fields(msg);
      if (msg.event !== "dm_request" || !sender || typeof msg.data.channel !== "string") return;
      dms.set(sender.id, { name: sender.name, channel: msg.data.channel });
      showDms();
    },
  });
  for (const msg of await inbox.history({ after: 0, limit: 100 })) inbox.options.onMessage(msg);
  await open(`room:${cfg.room}`, `#${cfg.room}`);
  window.chatReady = true;
}

// A refusal (a 429 once this user asked for too many tokens, a 403 ...)
// says so in the status instead of leaving the page "connecting".
start().catch((e) => { $("status").textContent = `not connected: ${e.message}`; });
