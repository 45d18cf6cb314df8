/**
 * The page at `/`: publish a camera with WHIP and play a stream with WHEP through this proxy, in a
 * browser, with nothing else installed. Plain HTML and JavaScript, no build step.
 *
 * @since 0.1.0
 */
export const TRY_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rtc-proxy</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; }
  fieldset { border: 1px solid #ccc; border-radius: 6px; margin: 0 0 1rem; }
  label { margin-right: 1rem; }
  input { font: inherit; width: 10rem; }
  button { font: inherit; padding: .3rem .9rem; margin-right: .4rem; }
  .panes { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
  video { width: 100%; background: #111; border-radius: 6px; aspect-ratio: 16 / 9; }
  .status { font-family: ui-monospace, monospace; font-size: 13px; white-space: pre-wrap; min-height: 3em; }
</style>
</head>
<body>
<h1>rtc-proxy: try WHIP and WHEP</h1>
<p>Publish your camera to a stream and play it back, both through this proxy and the origin it picks for the stream.</p>
<fieldset>
  <label>app <input id="app" value="live"></label>
  <label>stream <input id="stream" value="livestream"></label>
  <label>token <input id="token" placeholder="optional bearer"></label>
</fieldset>
<div class="panes">
  <section>
    <h2>Publish (WHIP)</h2>
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
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
for (const name of ["app", "stream"]) if (params.get(name)) $(name).value = params.get(name);

const endpoint = (kind) =>
  "/rtc/v1/" + kind + "/?app=" + encodeURIComponent($("app").value) + "&stream=" + encodeURIComponent($("stream").value);

// Non-trickle: wait for ICE gathering (bounded) so the offer carries the candidates.
const gathered = (pc) => new Promise((resolve) => {
  if (pc.iceGatheringState === "complete") return resolve();
  const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
  pc.addEventListener("icegatheringstatechange", done);
  setTimeout(resolve, 2000);
});

async function negotiate(pc, kind, status) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const headers = { "Content-Type": "application/sdp" };
  if ($("token").value) headers.Authorization = "Bearer " + $("token").value;
  const response = await fetch(endpoint(kind), { method: "POST", headers, body: pc.localDescription.sdp });
  const text = await response.text();
  if (response.status !== 201) {
    let message = text;
    try { message = JSON.parse(text).message || text; } catch {}
    throw new Error(response.status + ": " + message);
  }
  await pc.setRemoteDescription({ type: "answer", sdp: text });
  status.textContent = "session " + response.headers.get("Location");
  return new URL(response.headers.get("Location"), location.href).toString();
}

function watch(pc, status, label) {
  pc.addEventListener("connectionstatechange", () => {
    status.textContent = label + ": " + pc.connectionState + "\\n" + status.textContent.split("\\n").slice(-1)[0];
  });
}

const sessions = {};
async function stop(kind) {
  const session = sessions[kind];
  if (!session) return;
  delete sessions[kind];
  session.pc.close();
  if (session.stream) session.stream.getTracks().forEach((t) => t.stop());
  if (session.location) await fetch(session.location, { method: "DELETE" }).catch(() => {});
  $("stop-" + (kind === "whip" ? "publish" : "play")).disabled = true;
  $(kind === "whip" ? "publish" : "play").disabled = false;
}

$("publish").onclick = async () => {
  const status = $("publish-status");
  $("publish").disabled = true;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    $("local").srcObject = stream;
    const pc = new RTCPeerConnection();
    sessions.whip = { pc, stream };
    watch(pc, status, "publisher");
    for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    sessions.whip.location = await negotiate(pc, "whip", status);
    $("stop-publish").disabled = false;
  } catch (error) {
    status.textContent = "cannot publish: " + error.message;
    await stop("whip");
  }
};

$("play").onclick = async () => {
  const status = $("play-status");
  $("play").disabled = true;
  try {
    const pc = new RTCPeerConnection();
    sessions.whep = { pc };
    watch(pc, status, "player");
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const remote = new MediaStream();
    $("remote").srcObject = remote;
    pc.ontrack = (event) => remote.addTrack(event.track);
    sessions.whep.location = await negotiate(pc, "whep", status);
    $("stop-play").disabled = false;
  } catch (error) {
    status.textContent = "cannot play: " + error.message;
    await stop("whep");
  }
};

$("stop-publish").onclick = () => stop("whip");
$("stop-play").onclick = () => stop("whep");
addEventListener("pagehide", () => { stop("whip"); stop("whep"); });

// For tests and the curious: frames the player has decoded so far.
window.playerFramesDecoded = async () => {
  const pc = sessions.whep && sessions.whep.pc;
  if (!pc) return 0;
  let frames = 0;
  (await pc.getStats()).forEach((report) => {
    if (report.type === "inbound-rtp" && report.kind === "video") frames += report.framesDecoded || 0;
  });
  return frames;
};
</script>
</body>
</html>
`
