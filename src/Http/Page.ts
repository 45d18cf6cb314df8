/**
 * The page at `/`: publish a camera with WHIP and play a stream with WHEP through this proxy, in a
 * browser, with nothing else installed. Plain HTML and JavaScript, no build step: backslashes in the
 * script are doubled, and the script builds strings with `+`, never with `${}`.
 *
 * What the page says is what the browser sees: the peer connection's state, figures from `getStats`
 * once a second, a player that is connected but gets no media, the address an ICE failure could not
 * reach, and the streams this proxy relays (`GET /rtc/v1/streams`).
 *
 * @since 0.1.0
 */

/** The icon, served at `/favicon.ico` and inlined into the page. */
export const FAVICON_SVG =
  `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#1d4ed8"/>` +
  `<path d="M7 11h11v10H7zM18 14l7-4v12l-7-4z" fill="#fff"/></svg>`

export const TRY_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rtc-proxy</title>
<link rel="icon" type="image/svg+xml" href="data:image/svg+xml,${encodeURIComponent(FAVICON_SVG)}">
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; }
  h2 { font-size: 1.1rem; }
  fieldset { border: 1px solid #ccc; border-radius: 6px; margin: 0 0 1rem; }
  label { margin-right: 1rem; }
  input { font: inherit; width: 10rem; }
  select { font: inherit; max-width: 14rem; }
  button { font: inherit; padding: .3rem .9rem; margin-right: .4rem; }
  .devices { display: flex; flex-wrap: wrap; gap: .3rem 1rem; margin: 0 0 .5rem; }
  .devices label { margin: 0; }
  .share { margin: .5rem 0 0; word-break: break-all; }
  .panes { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
  video { width: 100%; background: #111; border-radius: 6px; aspect-ratio: 16 / 9; margin-top: .5rem; }
  .status { font-family: ui-monospace, monospace; font-size: 13px; white-space: pre-wrap; min-height: 4.2em; }
  #streams { padding-left: 1.2rem; }
  #streams button { padding: 0; margin: 0; border: 0; background: none; color: #1d4ed8; text-decoration: underline; cursor: pointer; }
  .muted { color: #666; }
</style>
</head>
<body>
<h1>rtc-proxy: try WHIP and WHEP</h1>
<p>Publish your camera to a stream and play it back, both through this proxy and the origin it picks for the stream.</p>
<fieldset>
  <label>app <input id="app" value="live"></label>
  <label>stream <input id="stream" value="livestream"></label>
  <label>token <input id="token" placeholder="optional bearer"></label>
  <div class="share">share: <a id="share" href=""></a></div>
</fieldset>
<div class="panes">
  <section>
    <h2>Publish (WHIP)</h2>
    <div class="devices">
      <label>camera <select id="camera"><option value="">default camera</option></select></label>
      <label>microphone <select id="microphone"><option value="">default microphone</option><option value="none">no microphone</option></select></label>
    </div>
    <button id="publish">Publish camera</button><button id="stop-publish" disabled>Stop</button>
    <video id="local" muted autoplay playsinline></video>
    <div id="publish-status" class="status"></div>
  </section>
  <section>
    <h2>Play (WHEP)</h2>
    <button id="play">Play</button><button id="stop-play" disabled>Stop</button>
    <video id="remote" muted autoplay playsinline controls></video>
    <div id="play-status" class="status"></div>
  </section>
</div>
<section>
  <h2>Live streams on this proxy</h2>
  <ul id="streams"></ul>
  <div id="streams-status" class="muted"></div>
</section>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
for (const name of ["app", "stream"]) if (params.get(name)) $(name).value = params.get(name);

const query = () => "?app=" + encodeURIComponent($("app").value) + "&stream=" + encodeURIComponent($("stream").value);
const endpoint = (kind) => "/rtc/v1/" + kind + "/" + query();
const authorization = () => $("token").value ? { Authorization: "Bearer " + $("token").value } : {};
const describe = (error) => (error && (error.message || error.name)) || String(error);

// The share link carries app and stream, never the token.
function updateShare() {
  const url = location.origin + location.pathname + query();
  $("share").href = url;
  $("share").textContent = url;
}
for (const name of ["app", "stream"]) $(name).addEventListener("input", updateShare);
updateShare();

// --- status: one state line, the session URL, the figures, and a hint when something is wrong.

const panes = {
  whip: { status: "publish-status", start: "publish", stop: "stop-publish", label: "publisher" },
  whep: { status: "play-status", start: "play", stop: "stop-play", label: "player" }
};
const sessions = {};
const latest = { whip: null, whep: null };

function render(session) {
  if (sessions[session.kind] !== session) return;
  const lines = [panes[session.kind].label + ": " + session.state];
  if (session.location) lines.push("session " + new URL(session.location).pathname);
  if (session.figures) lines.push(formatFigures(session.figures));
  if (session.hint) lines.push(session.hint);
  $(panes[session.kind].status).textContent = lines.join("\\n");
}

const say = (kind, text) => { $(panes[kind].status).textContent = panes[kind].label + ": " + text; };

function formatFigures(f) {
  const parts = [];
  parts.push(f.bitrateKbps === null ? "… kbit/s" : Math.round(f.bitrateKbps) + " kbit/s");
  parts.push(f.fps === null ? "… fps" : Math.round(f.fps) + " fps");
  parts.push(f.width ? f.width + "x" + f.height : "no video yet");
  if (f.packetsLost !== null) parts.push(f.packetsLost + " packets lost");
  if (f.roundTripMs !== null) parts.push("rtt " + Math.round(f.roundTripMs) + " ms");
  return parts.join(" · ");
}

// --- the answer's candidates, to say what an ICE failure could not reach.

const candidatesOf = (sdp) => sdp.split(/\\r?\\n/)
  .filter((line) => line.startsWith("a=candidate:"))
  .map((line) => {
    const fields = line.slice("a=candidate:".length).split(" ");
    return { protocol: (fields[2] || "").toLowerCase(), address: fields[4], port: fields[5] };
  });

function iceFailedHint(session) {
  const udp = session.candidates.filter((c) => c.protocol === "udp");
  if (udp.length === 0) return "The answer carried no UDP candidate: the proxy gave this browser no address to send media to.";
  const tcp = session.candidates.filter((c) => c.protocol === "tcp");
  const where = udp.concat(tcp).map((c) => c.address + " " + c.protocol.toUpperCase() + " port " + c.port)
    .filter((v, i, all) => all.indexOf(v) === i).join(", ");
  const port = udp[0].port;
  return "This browser could not reach " + where + " (the candidate in the proxy's answer). Check:\\n" +
    "- a firewall between here and the proxy lets UDP port " + port + " through (both ways);\\n" +
    (tcp.length === 0 ? "" : "- or TCP port " + tcp[0].port + " (ICE-TCP, PROXY_WEBRTC_TCP), for networks that block UDP;\\n") +
    "- PROXY_CANDIDATE_IP is an address this browser can reach (the proxy's public IP behind NAT);\\n" +
    "- UDP port " + port + " on that address is reachable from here (PROXY_CANDIDATE_PORT when the port is forwarded).";
}

const NO_MEDIA_MS = 4000;

function watch(session) {
  const pc = session.pc;
  pc.addEventListener("connectionstatechange", () => {
    if (sessions[session.kind] !== session) return;
    const state = pc.connectionState;
    session.hint = "";
    if (state === "connected") {
      session.connectedAt = session.connectedAt || performance.now();
      session.state = "connected";
      if (session.kind === "whep") {
        setTimeout(() => sample(session), NO_MEDIA_MS + 50);
      }
    } else if (state === "failed") {
      session.state = "ICE failed";
      session.hint = iceFailedHint(session);
    } else if (state === "disconnected") {
      session.state = "disconnected (no packets for a few seconds; waiting for them to come back)";
    } else {
      session.state = state;
    }
    render(session);
  });
}

// --- figures from getStats, once a second.

async function sample(session) {
  if (sessions[session.kind] !== session || session.sampling) return;
  session.sampling = true;
  try {
    const stats = await session.pc.getStats();
    if (sessions[session.kind] !== session) return;
    const inbound = session.kind === "whep";
    const rtp = inbound ? "inbound-rtp" : "outbound-rtp";
    let bytes = 0, frames = 0, audioPackets = 0, fps = null, width = 0, height = 0;
    let lost = null, remoteRtt = null, pairRtt = null, pairId = null;
    stats.forEach((report) => {
      if (report.type === rtp) {
        bytes += (inbound ? report.bytesReceived : report.bytesSent) || 0;
        if (report.kind === "video") {
          frames += (inbound ? report.framesDecoded : report.framesEncoded) || 0;
          if (typeof report.framesPerSecond === "number") fps = report.framesPerSecond;
          if (report.frameWidth) { width = report.frameWidth; height = report.frameHeight; }
        } else if (report.kind === "audio") {
          audioPackets += (inbound ? report.packetsReceived : report.packetsSent) || 0;
        }
        if (inbound && typeof report.packetsLost === "number") lost = (lost || 0) + report.packetsLost;
      } else if (report.type === "remote-inbound-rtp") {
        if (typeof report.packetsLost === "number") lost = (lost || 0) + report.packetsLost;
        if (typeof report.roundTripTime === "number") remoteRtt = report.roundTripTime;
      } else if (report.type === "transport" && report.selectedCandidatePairId) {
        pairId = report.selectedCandidatePairId;
      } else if (report.type === "candidate-pair" && report.nominated && report.state === "succeeded" &&
          typeof report.currentRoundTripTime === "number" && pairRtt === null) {
        pairRtt = report.currentRoundTripTime;
      }
    });
    const pair = pairId ? stats.get(pairId) : undefined;
    if (pair && typeof pair.currentRoundTripTime === "number") pairRtt = pair.currentRoundTripTime;
    const rtt = pairRtt !== null ? pairRtt : remoteRtt;

    const now = performance.now();
    const previous = session.previous;
    const seconds = previous ? (now - previous.at) / 1000 : 0;
    const figures = {
      kind: inbound ? "play" : "publish",
      bitrateKbps: seconds > 0 ? Math.max(0, (bytes - previous.bytes) * 8 / 1000 / seconds) : null,
      fps: fps !== null ? fps : seconds > 0 ? Math.max(0, (frames - previous.frames) / seconds) : null,
      width,
      height,
      resolution: width ? width + "x" + height : null,
      packetsLost: lost,
      roundTripMs: rtt === null ? null : rtt * 1000,
      frames,
      framesDecoded: inbound ? frames : undefined,
      audioPackets,
      bytes,
      connectionState: session.pc.connectionState
    };
    session.previous = { at: now, bytes, frames };
    session.figures = figures;
    latest[session.kind] = figures;

    if (inbound && session.pc.connectionState === "connected") {
      const media = frames > 0 || audioPackets > 0;
      if (media) session.state = "connected, playing";
      else if (now - session.connectedAt >= NO_MEDIA_MS) session.state = "connected, no media yet: is anyone publishing this stream?";
    }
    render(session);
  } catch {
    // A closed connection has no stats; the next state change says why.
  } finally {
    session.sampling = false;
  }
}

// --- signaling.

// Non-trickle: wait for ICE gathering (bounded) so the offer carries the candidates.
const gathered = (pc) => new Promise((resolve) => {
  if (pc.iceGatheringState === "complete") return resolve();
  const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
  pc.addEventListener("icegatheringstatechange", done);
  setTimeout(resolve, 2000);
});

async function negotiate(session) {
  const pc = session.pc;
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  session.state = "sending the offer";
  render(session);
  const headers = Object.assign({ "Content-Type": "application/sdp" }, authorization());
  const response = await fetch(endpoint(session.kind), { method: "POST", headers, body: pc.localDescription.sdp });
  const text = await response.text();
  if (response.status !== 201) {
    let message = text;
    try { message = JSON.parse(text).message || text; } catch {}
    throw new Error(response.status + ": " + message);
  }
  session.location = new URL(response.headers.get("Location"), location.href).toString();
  session.candidates = candidatesOf(text);
  await pc.setRemoteDescription({ type: "answer", sdp: text });
  session.state = "answered, connecting";
  render(session);
  session.timer = setInterval(() => sample(session), 1000);
}

function begin(kind, pc) {
  const session = { kind, pc, state: "starting", hint: "", candidates: [] };
  sessions[kind] = session;
  latest[kind] = null;
  $(panes[kind].start).disabled = true;
  $(panes[kind].stop).disabled = false;
  watch(session);
  render(session);
  return session;
}

/** Ends the session (DELETE on its URL) and says so: "stopped", or the reason it could not start. */
async function stop(kind, reason) {
  const session = sessions[kind];
  if (!session) return;
  delete sessions[kind];
  clearInterval(session.timer);
  session.pc.close();
  if (session.stream) session.stream.getTracks().forEach((t) => t.stop());
  $(panes[kind].stop).disabled = true;
  $(panes[kind].start).disabled = false;
  say(kind, reason || "stopped");
  if (!session.location) return;
  try {
    const response = await fetch(session.location, { method: "DELETE", headers: authorization() });
    if (!response.ok && !reason && !sessions[kind]) say(kind, "stopped (the proxy answered DELETE with " + response.status + ")");
  } catch (error) {
    if (!reason && !sessions[kind]) say(kind, "stopped (DELETE failed: " + describe(error) + ")");
  }
}

// --- camera and microphone.

const hasCamera = !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
const NO_CAMERA = "the camera needs https or localhost: the browser offers no camera or microphone to " +
  location.origin + ". Open this page through https, or at http://localhost:" + (location.port || "80") +
  " (an SSH tunnel works). Playing works from here.";

function fillSelect(select, devices, what, extra) {
  const previous = select.value;
  select.replaceChildren();
  const add = (value, text) => {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = text;
    select.append(option);
  };
  // Before permission, devices come without id or label.
  const known = devices.filter((d) => d.deviceId);
  if (known.length === 0) add("", "default " + what);
  known.forEach((d, i) => add(d.deviceId, d.label || what + " " + (i + 1)));
  for (const [value, text] of extra) add(value, text);
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
}

async function fillDevices() {
  if (!hasCamera || !navigator.mediaDevices.enumerateDevices) return;
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    fillSelect($("camera"), devices.filter((d) => d.kind === "videoinput"), "camera", []);
    fillSelect($("microphone"), devices.filter((d) => d.kind === "audioinput"), "microphone", [["none", "no microphone"]]);
  } catch {}
}

function constraints() {
  const camera = $("camera").value;
  const microphone = $("microphone").value;
  return {
    video: camera ? { deviceId: { exact: camera } } : true,
    audio: microphone === "none" ? false : microphone ? { deviceId: { exact: microphone } } : true
  };
}

if (hasCamera) {
  navigator.mediaDevices.addEventListener("devicechange", fillDevices);
  fillDevices();
} else {
  $("publish").disabled = true;
  $("camera").disabled = true;
  $("microphone").disabled = true;
  say("whip", NO_CAMERA);
}

$("publish").onclick = async () => {
  if (!hasCamera) return say("whip", NO_CAMERA);
  const session = begin("whip", new RTCPeerConnection());
  try {
    session.state = "asking for the camera";
    render(session);
    const stream = await navigator.mediaDevices.getUserMedia(constraints());
    session.stream = stream;
    if (sessions.whip !== session) return stream.getTracks().forEach((t) => t.stop());
    fillDevices();
    $("local").srcObject = stream;
    for (const track of stream.getTracks()) session.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    await negotiate(session);
  } catch (error) {
    if (sessions.whip === session) await stop("whip", "cannot publish: " + describe(error));
  }
};

$("play").onclick = async () => {
  const session = begin("whep", new RTCPeerConnection());
  try {
    session.pc.addTransceiver("video", { direction: "recvonly" });
    session.pc.addTransceiver("audio", { direction: "recvonly" });
    const remote = new MediaStream();
    $("remote").srcObject = remote;
    session.pc.ontrack = (event) => remote.addTrack(event.track);
    await negotiate(session);
  } catch (error) {
    if (sessions.whep === session) await stop("whep", "cannot play: " + describe(error));
  }
};

$("stop-publish").onclick = () => stop("whip");
$("stop-play").onclick = () => stop("whep");
addEventListener("pagehide", () => { stop("whip"); stop("whep"); });

// --- the streams this proxy relays, every few seconds.

async function refreshStreams() {
  try {
    const response = await fetch("/rtc/v1/streams", { cache: "no-store", headers: authorization() });
    if (response.status === 401) {
      $("streams").replaceChildren();
      $("streams-status").textContent = "this proxy lists its streams only with its token: enter it above";
      return;
    }
    if (!response.ok) throw new Error("the proxy answered " + response.status);
    const { streams } = await response.json();
    const items = streams.map((s) => {
      const item = document.createElement("li");
      const pick = document.createElement("button");
      pick.type = "button";
      pick.textContent = (s.vhost && s.vhost !== "__defaultVhost__" ? s.vhost + "/" : "") + s.app + "/" + s.name;
      pick.title = "fill app and stream";
      pick.onclick = () => { $("app").value = s.app; $("stream").value = s.name; updateShare(); };
      const counts = document.createElement("span");
      counts.className = "muted";
      counts.textContent = " " + s.publishers + " publisher" + (s.publishers === 1 ? "" : "s") + ", " +
        s.players + " player" + (s.players === 1 ? "" : "s");
      item.append(pick, counts);
      return item;
    });
    $("streams").replaceChildren(...items);
    $("streams-status").textContent = streams.length === 0 ? "none right now" : "";
  } catch (error) {
    $("streams-status").textContent = "cannot list the live streams: " + describe(error);
  }
}
refreshStreams();
$("token").addEventListener("change", refreshStreams);
setInterval(refreshStreams, 3000);

// --- for tests and the curious.

/** Frames the player has decoded so far. */
window.playerFramesDecoded = async () => {
  const pc = sessions.whep && sessions.whep.pc;
  if (!pc) return 0;
  let frames = 0;
  (await pc.getStats()).forEach((report) => {
    if (report.type === "inbound-rtp" && report.kind === "video") frames += report.framesDecoded || 0;
  });
  return frames;
};
/** The player's latest figures (bitrateKbps, fps, width, height, packetsLost, roundTripMs, ...), or null. */
window.playerStats = () => latest.whep;
/** The publisher's latest figures, or null. */
window.publisherStats = () => latest.whip;
</script>
</body>
</html>
`
