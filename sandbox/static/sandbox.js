// Sandbox page. Every button calls /sandbox/api/..., where the bridge asks a simulator to send it
// a real signed webhook; the page only polls /sandbox/api/state to show what each side received.
"use strict";

const POLL_MS = 300; // a message must show on the other side within a second
const MAX_FILE = 25 * 1024 * 1024;
const $ = (id) => document.getElementById(id);
const ui = { oa: "", zaloUser: "", conversation: "", pinned: false, mode: "reply", last: {}, state: null, anonymous: false, hoursAgo: 0 };

// -- small helpers ------------------------------------------------------------------------------

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

// Text with clickable links, built from text nodes so nothing a user typed becomes HTML.
function linkified(text) {
  const frag = document.createDocumentFragment();
  const parts = String(text || "").split(/(https?:\/\/[^\s]+|\/media\/[^\s]+)/g);
  parts.forEach((part, i) => {
    if (i % 2 === 0) { frag.appendChild(document.createTextNode(part)); return; }
    const a = el("a", "", part);
    a.href = part; a.target = "_blank"; a.rel = "noopener";
    frag.appendChild(a);
  });
  return frag;
}

function clock(value) {
  const d = typeof value === "number" ? new Date(value) : new Date(value || Date.now());
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function initials(name) {
  return String(name || "?").split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0]).join("").toUpperCase();
}

function toast(message) {
  const box = $("toast");
  box.textContent = message; box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

async function api(path, body) {
  const resp = await fetch("/sandbox/api/" + path, {
    // every action is for the OA picked in the selector (its connection and FreshChat account)
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(Object.assign({ oa: ui.oa }, body || {})),
  });
  const answer = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(answer.error || resp.statusText);
  if (answer.ok === false) toast("The bridge did not accept the webhook: " + JSON.stringify(answer.webhook_statuses));
  return answer;
}

function run(promise) {
  promise.then(poll, (err) => toast(String(err.message || err)));
}

// Only redraw a pane when its data changed, so scrolling and selections are left alone.
function changed(key, value) {
  const text = JSON.stringify(value);
  if (ui.last[key] === text) return false;
  ui.last[key] = text;
  return true;
}

// A pane follows new messages while its reader is at the bottom (or has not seen it yet).
// Images grow the pane when they load, after the redraw, so each one scrolls again on load.
function atBottom(box) {
  return box.scrollHeight - box.scrollTop - box.clientHeight < 60;
}

function scrollToEnd(box, redraw) {
  const follow = !box.dataset.seen || atBottom(box);
  redraw();
  box.dataset.seen = "1";
  box.dataset.follow = follow ? "1" : "";
  if (!follow) return;
  box.scrollTop = box.scrollHeight;
  box.querySelectorAll("img").forEach((img) => {
    if (!img.complete) img.addEventListener("load", () => keepFollowing(box), { once: true });
  });
}

function keepFollowing(box) {
  if (box.dataset.follow) box.scrollTop = box.scrollHeight;
}

// Scrolling up stops following; scrolling back to the bottom resumes it.
function trackReader(box) {
  box.addEventListener("scroll", () => { box.dataset.follow = atBottom(box) ? "1" : ""; });
}

// -- files: picked by the user or drawn on a canvas ----------------------------------------------

function readFile(file) {
  return new Promise((resolve, reject) => {
    if (file.size > MAX_FILE) { reject(new Error("files up to 25 MB")); return; }
    const reader = new FileReader();
    reader.onload = () => resolve({ name: file.name, content_type: file.type || "application/octet-stream",
      data: String(reader.result).split(",")[1] || "" });
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function canvasFile(canvas, name) {
  return { name, content_type: "image/png", data: canvas.toDataURL("image/png").split(",")[1] };
}

function samplePhoto() {
  const c = document.createElement("canvas");
  c.width = 320; c.height = 200;
  const g = c.getContext("2d");
  const hue = Math.floor(Math.random() * 360);
  const grad = g.createLinearGradient(0, 0, 320, 200);
  grad.addColorStop(0, `hsl(${hue},70%,60%)`); grad.addColorStop(1, `hsl(${(hue + 60) % 360},70%,45%)`);
  g.fillStyle = grad; g.fillRect(0, 0, 320, 200);
  g.fillStyle = "rgba(255,255,255,.85)"; g.beginPath(); g.arc(250, 60, 28, 0, 2 * Math.PI); g.fill();
  g.fillStyle = "rgba(0,0,0,.25)"; g.beginPath(); g.moveTo(0, 200); g.lineTo(110, 90); g.lineTo(220, 200); g.fill();
  g.fillStyle = "#fff"; g.font = "bold 22px 'Liberation Sans', sans-serif";
  g.fillText("Ảnh mẫu · " + clock(Date.now()), 16, 34);
  return canvasFile(c, "photo-" + Date.now() + ".png");
}

// Stickers are drawn, not fonts, so they look the same on a machine without emoji fonts.
const STICKERS = {
  smile(g) {
    g.fillStyle = "#ffcc33"; g.beginPath(); g.arc(64, 64, 56, 0, 2 * Math.PI); g.fill();
    g.fillStyle = "#5a3b00"; g.beginPath(); g.arc(44, 52, 7, 0, 2 * Math.PI); g.arc(84, 52, 7, 0, 2 * Math.PI); g.fill();
    g.strokeStyle = "#5a3b00"; g.lineWidth = 6; g.beginPath(); g.arc(64, 66, 30, 0.15 * Math.PI, 0.85 * Math.PI); g.stroke();
  },
  heart(g) {
    g.fillStyle = "#ff4d6d"; g.beginPath(); g.moveTo(64, 112);
    g.bezierCurveTo(0, 70, 10, 10, 64, 40); g.bezierCurveTo(118, 10, 128, 70, 64, 112); g.fill();
  },
  star(g) {
    g.fillStyle = "#ffb703"; g.beginPath();
    for (let i = 0; i < 10; i++) {
      const r = i % 2 ? 24 : 58, a = -Math.PI / 2 + (i * Math.PI) / 5;
      g.lineTo(64 + r * Math.cos(a), 66 + r * Math.sin(a));
    }
    g.fill();
  },
  thanks(g) {
    g.fillStyle = "#0068ff"; g.beginPath(); g.arc(64, 64, 56, 0, 2 * Math.PI); g.fill();
    g.fillStyle = "#fff"; g.font = "bold 24px 'Liberation Sans', sans-serif"; g.textAlign = "center";
    g.fillText("Cảm ơn", 64, 72);
  },
};

function sticker(name) {
  const c = document.createElement("canvas");
  c.width = 128; c.height = 128;
  STICKERS[name](c.getContext("2d"));
  return canvasFile(c, "sticker-" + name + ".png");
}

// -- the Zalo side ---------------------------------------------------------------------------------

function zaloSend(body) {
  if (!ui.zaloUser) { toast("pick a Zalo user first"); return; }
  run(api("zalo/send", Object.assign({ user_id: ui.zaloUser, anonymous: ui.anonymous, hours_ago: ui.hoursAgo }, body)));
}

function sendZaloText() {
  const input = $("zalo-text");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  zaloSend({ kind: "text", text });
}

const PLACES = [["21.0287", "105.8524", "Hồ Hoàn Kiếm, Hà Nội"], ["10.7797", "106.6990", "Nhà thờ Đức Bà, TP.HCM"],
  ["16.0544", "108.2022", "Cầu Rồng, Đà Nẵng"]];

function renderUsers(users) {
  const select = $("zalo-user");
  if (!ui.zaloUser || !users.some((u) => u.user_id === ui.zaloUser)) {
    ui.zaloUser = (users.find((u) => u.user_id === document.body.dataset.demoUser) || users[0] || {}).user_id || "";
  }
  if (changed("users", users)) {
    select.replaceChildren(...users.map((u) => {
      // the person's app-wide id too: the same person on another OA of the app shows the same one
      const person = u.user_id_by_app ? " · app id …" + u.user_id_by_app.slice(-4) : "";
      const option = el("option", "", u.display_name + " (" + u.user_id.slice(-4) + person + ")");
      option.value = u.user_id;
      return option;
    }));
  }
  select.value = ui.zaloUser;
  const user = users.find((u) => u.user_id === ui.zaloUser) || {};
  $("zalo-who").textContent = user.display_name || "";
  $("demo-refuse").checked = Boolean(user.send_error);
  const follow = $("zalo-follow");
  if (follow) {
    follow.textContent = user.follows === false ? "☆ Follow" : "★ Unfollow";
    follow.dataset.follow = user.follows === false ? "yes" : "no";
  }
}

function zaloBubble(item) {
  const b = el("div", "bubble from-" + item.from + (item.kind === "sticker" ? " sticker" : ""));
  b.dataset.id = item.id;
  if (item.kind === "image" || item.kind === "gif" || item.kind === "sticker") {
    const img = el("img"); img.src = item.url; img.alt = item.kind; b.appendChild(img);
    if (item.text) b.appendChild(el("div", "", item.text));
  } else if (item.kind === "file") {
    const a = el("a", "", "File: " + (item.name || "file")); a.href = item.url; a.target = "_blank"; b.appendChild(a);
  } else if (item.kind === "template") {
    b.classList.add("template");
    b.appendChild(el("div", "template-title", item.title));
    b.appendChild(linkified(item.text));
  } else if (item.kind === "location") {
    b.appendChild(el("div", "", "◎ " + (item.text || "Location")));
    b.appendChild(el("div", "muted", item.location.join(", ")));
  } else {
    b.appendChild(linkified(item.text));
  }
  const failed = (item.from === "user" || item.from === "event") && !item.delivered;
  b.appendChild(el("div", "meta" + (failed ? " failed" : ""), clock(item.time) + (item.anonymous ? " · anonymous" : "") + (item.from === "user" ? (failed ? " · not accepted by the bridge" : " ✓") : "")));
  if (item.from === "oa") b.appendChild(reactControl(item));
  return b;
}

// Zalo's reaction codes and the emoji its app shows for them; "/-remove" takes one back.
const REACTIONS = { "/-heart": "❤️", "/-strong": "👍", ":>": "😆", ":o": "😮", ":-((": "😭", ":-h": "😡" };

function reactControl(item) {
  const pick = el("select", "react");
  pick.title = "React as the user";
  const shown = item.reaction && item.reaction !== "/-remove" ? REACTIONS[item.reaction] || item.reaction : "☺";
  pick.appendChild(el("option", "", shown)).value = "";
  for (const [code, emoji] of Object.entries(REACTIONS)) pick.appendChild(el("option", "", emoji)).value = code;
  if (item.reaction && item.reaction !== "/-remove") pick.appendChild(el("option", "", "✕ remove")).value = "/-remove";
  pick.onchange = () => {
    if (pick.value) run(api("zalo/react", { user_id: ui.zaloUser, msg_id: item.id, react_icon: pick.value }));
  };
  return pick;
}

function renderPhone(zalo) {
  const items = zalo.chats[ui.zaloUser] || [];
  if (!changed("phone", [ui.zaloUser, items])) return;
  const box = $("zalo-messages");
  scrollToEnd(box, () => box.replaceChildren(...items.map(zaloBubble)));
}

// -- the FreshChat side ------------------------------------------------------------------------------

function preview(conv) {
  const last = conv.messages[conv.messages.length - 1];
  if (!last) return "";
  const part = last.parts[0] || {};
  return (last.private ? "[note] " : "") + (part.kind === "text" ? part.text : "[" + part.kind + "] " + (part.name || ""));
}

function pickConversation(conversations) {
  const known = conversations.some((c) => c.id === ui.conversation);
  if (ui.pinned && known) return;
  const visitors = (ui.state && ui.state.zalo.visitors) || {};
  const me = ui.anonymous ? visitors[ui.zaloUser] : ui.zaloUser; // a visitor's conversation is its own
  // a person merged across the app's OAs is one FreshChat user (referenced by the app-wide id)
  // with a conversation per OA: this OA's is the one in its topic
  const user = ((ui.state && ui.state.zalo.users) || []).find((u) => u.user_id === me) || {};
  const topic = ui.state && ui.state.topic;
  const mine = me && conversations.find((c) => (c.zalo_user_id === me || (user.user_id_by_app && c.zalo_user_id === user.user_id_by_app))
    && (!topic || !c.topic || c.topic === topic));
  ui.conversation = (mine || (known ? { id: ui.conversation } : conversations[0]) || {}).id || "";
}

function renderList(conversations) {
  if (!changed("list", [ui.conversation, conversations.map((c) => [c.id, c.user_name, c.status, c.topic_oa, preview(c)])])) return;
  $("fc-list").replaceChildren(...conversations.map((c) => {
    const row = el("div", "conv" + (c.id === ui.conversation ? " active" : ""));
    row.dataset.id = c.id;
    row.appendChild(el("div", "avatar", initials(c.user_name)));
    const main = el("div", "conv-main");
    const name = el("div", "conv-name", c.user_name);
    name.appendChild(el("span", "pill " + c.status, c.status));
    if (c.topic_oa) name.appendChild(el("span", "pill topic", c.topic_oa)); // the OA whose topic it is in
    main.append(name, el("div", "conv-preview", preview(c)));
    row.appendChild(main);
    row.onclick = () => { ui.conversation = c.id; ui.pinned = true; poll(); };
    return row;
  }));
}

function partNode(part) {
  if (part.kind === "image") {
    const img = el("img"); img.src = part.url; img.alt = "image"; return img;
  }
  if (part.kind === "file") {
    const a = el("a", "", "File: " + (part.name || "file")); a.href = part.url; a.target = "_blank"; return a;
  }
  const div = el("div"); div.appendChild(linkified(part.text)); return div;
}

function messageNode(m, conv) {
  const kind = m.private ? "private" : m.actor;
  const node = el("div", "msg " + kind);
  node.dataset.id = m.id;
  const who = m.private ? "Private note" + (m.author ? " · " + m.author : "") :
    m.actor === "user" ? conv.user_name : (m.author || m.actor);
  node.appendChild(el("div", "who", who + " · " + clock(m.time)));
  const body = el("div", "body");
  m.parts.forEach((p) => body.appendChild(partNode(p)));
  node.appendChild(body);
  return node;
}

// FreshChat's inbox offers "Reopen" on a resolved conversation and "Resolve" otherwise.
function renderResolve(conv) {
  const button = $("fc-resolve");
  const resolved = Boolean(conv) && conv.status === "resolved";
  button.disabled = !conv;
  button.textContent = resolved ? "↺ Reopen" : "✓ Resolve";
  button.dataset.action = resolved ? "reopen" : "resolve";
}

function renderConversation(conversations) {
  const conv = conversations.find((c) => c.id === ui.conversation);
  $("fc-send").disabled = !conv;
  renderResolve(conv);
  if (!changed("conversation", conv || null)) return;
  $("fc-conv-title").textContent = conv ? conv.user_name : "No conversation yet";
  $("fc-conv-status").textContent = conv ? "Status: " + conv.status + " · via Zalo" : "Send a message from the Zalo phone";
  renderProfile(conv);
  const box = $("fc-messages");
  if (box.dataset.conv !== ui.conversation) { box.dataset.seen = ""; box.dataset.conv = ui.conversation; }
  scrollToEnd(box, () => box.replaceChildren(...(conv ? conv.messages.map((m) => messageNode(m, conv)) : [])));
}

// What the agent sees on the FreshChat user's profile: the OA(s), and what the person shared.
const PROFILE = [["zalo_oa", "Wrote to"], ["phone", "☎"], ["shared_name", "Name"], ["shared_address", "Address"],
  ["shared_district", "District"], ["shared_city", "City"]];

function renderProfile(conv) {
  let line = $("fc-profile");
  if (!line) { line = el("div", "fc-profile"); line.id = "fc-profile"; $("fc-conv-status").after(line); }
  const profile = (conv && conv.profile) || {};
  const shown = PROFILE.filter(([key]) => profile[key]).map(([key, label]) => label + ": " + profile[key]);
  if (conv && conv.group) shown.push("Group: " + conv.group);
  line.textContent = shown.join(" · ");
}

function sendAgent() {
  const text = $("fc-text").value.trim();
  if (!text || !ui.conversation) return;
  $("fc-text").value = "";
  const path = ui.mode === "note" ? "agent/note" : "agent/reply";
  run(api(path, { conversation_id: ui.conversation, text }));
}

function setMode(mode) {
  ui.mode = mode;
  $("fc-mode-reply").classList.toggle("active", mode === "reply");
  $("fc-mode-note").classList.toggle("active", mode === "note");
  document.querySelector(".fc-composer").classList.toggle("note", mode === "note");
  $("fc-send").textContent = mode === "note" ? "Add note" : "Send";
  $("fc-text").placeholder = mode === "note" ? "A private note: only agents see it, it never goes to Zalo"
    : "Type your reply… (Enter to send, Shift+Enter for a new line)";
}

// -- status -----------------------------------------------------------------------------------------

const REDIS_DOWN = "Redis unreachable: the bridge cannot read its status";

function statusRows(s) {
  if (s.redis) {
    return [
      ["Redis", "unreachable", "bad"],
      ["Token refreshes", s.zalo_refreshes == null ? "–" : s.zalo_refreshes, ""],
      ["Resolve notification", s.resolve_notification ? "on" : "off", ""],
      ["Satisfaction survey", s.satisfaction_survey ? "on" : "off", ""],
      ["Merge users by app", s.merge_users_by_app ? "on" : "off", ""],
    ];
  }
  const token = s.zalo_token || {};
  const hours = token.expires_at ? ((token.expires_at - Date.now() / 1000) / 3600).toFixed(1) + " h" : "–";
  return [
    ["Redis", "ok", "good"],
    ["Lanes waiting (queue)", s.lanes_pending, ""],
    ["Lanes due now", s.lanes_due_now, ""],
    ["Dead letters", s.dead_letters, s.dead_letters ? "bad" : ""],
    ["Worker heartbeat", s.worker_heartbeat_age == null ? "none" : s.worker_heartbeat_age + " s ago",
      s.worker_heartbeat_age == null || s.worker_heartbeat_age > 10 ? "bad" : "good"],
    ["Zalo token", token.dead ? "dead: " + token.dead : token.present ? "stored" : "from config", token.dead ? "bad" : "good"],
    ["Token expires in", hours, ""],
    ["Token refreshes", s.zalo_refreshes == null ? "–" : s.zalo_refreshes, ""],
    ["Resolve notification", s.resolve_notification ? "on" : "off", ""],
    ["Satisfaction survey", s.satisfaction_survey ? "on" : "off", ""],
    ["Merge users by app", s.merge_users_by_app ? "on" : "off", ""],
  ];
}

function renderStatus(state) {
  const s = state.status || {};
  const partners = $("partners");
  partners.textContent = state.partners === "ok" ? "simulators: connected" : "simulators: " + (state.partners || "?");
  partners.className = "partners" + (state.partners === "ok" ? "" : " down");
  if (!changed("status", s)) return;
  $("status").replaceChildren(...statusRows(s).flatMap(([k, v, cls]) => [el("dt", "", k), el("dd", cls, String(v))]));
  $("status-errors").replaceChildren(...(s.last_errors || []).slice(0, 8).map(errorLine));
  if (s.redis) $("status-errors").appendChild(el("li", "bad", REDIS_DOWN));
  else if (!(s.last_errors || []).length) $("status-errors").appendChild(el("li", "muted", "none"));
}

function errorLine(e) {
  return el("li", "", (e.at ? clock(e.at * 1000) + " " : "") + (e.lane ? e.lane + ": " : "") + e.error);
}

// The OA selector: each OA is one connection of the bridge, with its own FreshChat account.
function renderOas(state) {
  if (!ui.oa && state.oa) ui.oa = state.oa;
  if (!changed("oas", state.oas || [])) return;
  $("oa").replaceChildren(...(state.oas || []).map((o) => {
    const option = el("option", "", o.name);
    option.value = o.id; option.selected = o.id === ui.oa;
    return option;
  }));
  const picked = (state.oas || []).find((o) => o.id === ui.oa);
  if (picked) $("oa-name").textContent = picked.name;
}

function switchOa(oaId) {
  // another OA: other users and another inbox, so nothing picked or drawn carries over
  Object.assign(ui, { oa: oaId, zaloUser: "", conversation: "", pinned: false, last: {} });
  poll();
}

// -- polling and wiring ------------------------------------------------------------------------------

async function poll() {
  clearTimeout(poll.timer);
  try {
    const query = ui.oa ? "?oa=" + encodeURIComponent(ui.oa) : "";
    const state = await (await fetch("/sandbox/api/state" + query, { cache: "no-store" })).json();
    ui.state = state;
    renderOas(state);
    renderStatus(state);
    if (state.zalo && state.oa === ui.oa) { // an answer for the OA picked before a switch is dropped
      renderUsers(state.zalo.users);
      renderPhone(state.zalo);
      pickConversation(state.inbox.conversations);
      renderList(state.inbox.conversations);
      renderConversation(state.inbox.conversations);
    }
  } catch (err) {
    $("partners").textContent = "bridge not reachable";
    $("partners").className = "partners down";
  }
  poll.timer = setTimeout(poll, POLL_MS);
}

function onFile(input, send) {
  input.addEventListener("change", () => {
    const file = input.files[0];
    input.value = "";
    if (file) readFile(file).then(send, (err) => toast(String(err.message || err)));
  });
}

function wireZalo() {
  $("oa").onchange = (e) => switchOa(e.target.value);
  $("zalo-send").onclick = sendZaloText;
  $("zalo-text").addEventListener("keydown", (e) => { if (e.key === "Enter") sendZaloText(); });
  $("zalo-user").onchange = (e) => { ui.zaloUser = e.target.value; ui.pinned = false; poll(); };
  $("zalo-new-user").onclick = () => run(api("zalo/users", {}).then((u) => { ui.zaloUser = u.user_id; ui.pinned = false; }));
  $("zalo-sample-image").onclick = () => zaloSend({ kind: "image", file: samplePhoto() });
  onFile($("zalo-image-file"), (file) => zaloSend({ kind: "image", file }));
  onFile($("zalo-file"), (file) => zaloSend({ kind: "file", file }));
  $("zalo-location").onclick = () => {
    const [lat, lon, label] = PLACES[Math.floor(Math.random() * PLACES.length)];
    zaloSend({ kind: "location", latitude: lat, longitude: lon, text: label });
  };
  const tray = $("sticker-tray");
  tray.replaceChildren(...Object.keys(STICKERS).map((name) => {
    const img = el("img"); img.alt = name; img.dataset.sticker = name;
    img.src = "data:image/png;base64," + sticker(name).data;
    img.onclick = () => { tray.hidden = true; zaloSend({ kind: "sticker", file: sticker(name) }); };
    return img;
  }));
  $("zalo-sticker").onclick = () => { tray.hidden = !tray.hidden; };
  wireAnonymous();
  wireWrittenAgo();
  wireShareAndFollow();
}

// "Share info" fills in the OA's request-user-info form (user_submit_info); "Unfollow" / "Follow"
// sends what Zalo sends when the user taps those on the OA's profile. Built here, like the others.
const SHARE_FIELDS = [["name", "Name", "Nguyễn Thị Lan"], ["phone", "Phone", "84912345678"],
  ["address", "Address", "12 Lý Thái Tổ"], ["district", "District", "Hoàn Kiếm"], ["city", "City", "Hà Nội"]];

function wireShareAndFollow() {
  const share = el("button", "", "✎ Share info"); share.id = "zalo-share";
  share.title = "Fill in the OA's \"share your information\" form";
  const follow = el("button", "", "★ Unfollow"); follow.id = "zalo-follow";
  follow.title = "Follow or unfollow the OA";
  const form = el("form", "share-form"); form.id = "share-form"; form.hidden = true;
  for (const [name, label, example] of SHARE_FIELDS) {
    const input = el("input"); input.name = name; input.placeholder = label + " (e.g. " + example + ")";
    input.id = "share-" + name; input.setAttribute("aria-label", label);
    form.appendChild(input);
  }
  const send = el("button", "send", "Share"); send.type = "submit"; send.id = "share-send";
  form.appendChild(send);
  form.onsubmit = (e) => {
    e.preventDefault();
    if (!ui.zaloUser) { toast("pick a Zalo user first"); return; }
    const info = {};
    for (const [name] of SHARE_FIELDS) { const v = form.elements[name].value.trim(); if (v) info[name] = v; }
    form.hidden = true; form.reset();
    run(api("zalo/share", { user_id: ui.zaloUser, info }));
  };
  share.onclick = () => { form.hidden = !form.hidden; };
  follow.onclick = () => {
    if (!ui.zaloUser) { toast("pick a Zalo user first"); return; }
    run(api("zalo/follow", { user_id: ui.zaloUser, follow: follow.dataset.follow === "yes" }));
  };
  $("zalo-location").after(share, follow);
  document.querySelector(".phone-tools").after(form);
}

// "Written … ago": the next messages carry an older time, as if the user wrote hours ago, so the
// reply windows show without waiting: 47 h brings the bridge's "window closes soon" note, and an
// answer after 49 h goes out billed (Zalo's free replies last 48 h).
function wireWrittenAgo() {
  const pick = el("select"); pick.id = "zalo-hours-ago";
  pick.title = "Send as if the user wrote this long ago (Zalo's reply windows)";
  // Zalo's window runs from a user's last message: a user who already wrote now has an open
  // window whatever an older-dated message says, so these need a user with no messages yet.
  [["0", "written now"], ["47", "written 47 h ago (needs + New user)"], ["49", "written 49 h ago (needs + New user)"],
    ["160", "written 160 h ago (needs + New user)"]]
    .forEach(([value, label]) => { const o = el("option", "", label); o.value = value; pick.appendChild(o); });
  pick.onchange = () => { ui.hoursAgo = Number(pick.value); };
  $("zalo-location").after(pick);
}

// "Go anonymous": the same person writes from the OA's web chat widget, as an anonymous visitor
// (anonymous_send_* events; no location there). Built here so the page's markup stays as it is.
function wireAnonymous() {
  const box = el("input"); box.type = "checkbox"; box.id = "zalo-anonymous";
  const label = el("label", "tool", " Go anonymous");
  label.title = "Write as an anonymous visitor of the OA's web chat widget";
  label.prepend(box);
  $("zalo-location").after(label);
  box.onchange = () => {
    ui.anonymous = box.checked; ui.pinned = false;
    $("zalo-location").disabled = box.checked;
    poll();
  };
}

function wireAgent() {
  $("fc-send").onclick = sendAgent;
  $("fc-text").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); sendAgent(); } });
  $("fc-mode-reply").onclick = () => setMode("reply");
  $("fc-mode-note").onclick = () => setMode("note");
  $("fc-resolve").onclick = (e) =>
    run(api("agent/" + e.currentTarget.dataset.action, { conversation_id: ui.conversation }));
  onFile($("fc-attach"), (file) => {
    const text = $("fc-text").value.trim();
    $("fc-text").value = "";
    run(api("agent/attach", Object.assign({ conversation_id: ui.conversation, text }, file)));
  });
}

function wireDemo() {
  $("demo-refuse").onchange = (e) => {
    const user = (ui.state.zalo.users || []).find((u) => u.user_id === ui.zaloUser);
    if (!user) return;
    run(api("zalo/refuse", { user_id: user.user_id, display_name: user.display_name,
      send_error: e.target.checked ? -230 : null }));
  };
  $("demo-expire").onclick = () => run(api("zalo/expire-token"));
}

trackReader($("zalo-messages"));
trackReader($("fc-messages"));
wireZalo();
wireAgent();
wireDemo();
poll();
