// Live transcription over /v1/realtime (OpenAI Realtime protocol) and file upload to
// /v1/audio/transcriptions. Plain browser JavaScript, no build step.
const RATE_HZ = 24000;
const $ = (id) => document.getElementById(id);

let socket = null;
let audioContext = null;
let stream = null;
const items = new Map(); // item_id -> {li, text, interim}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function clock(ms) {
  const s = ms / 1000;
  const m = Math.floor(s / 60);
  return `${String(m).padStart(2, "0")}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
}

function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

// What the server's `session.created` says about how it transcribes (`transcription_mode`).
const MODES = {
  streaming: "streaming model: text grows while you speak",
  turns: "turn-based: each turn is transcribed when you pause",
};

function showMode(mode) {
  $("mode").dataset.mode = mode || "";
  $("mode").textContent = MODES[mode] || "";
}

// Each line's state lives in data-state (speech → transcribing → completed | failed) and
// data-deltas (deltas shown before it completed), so tests can read the page, not the words.
function item(id, startMs) {
  if (!items.has(id)) {
    const li = document.createElement("li");
    li.dataset.itemId = id;
    li.dataset.state = "speech";
    li.dataset.deltas = "0";
    li.innerHTML = '<span class="time"></span><span class="text pending">…</span>';
    $("lines").appendChild(li);
    items.set(id, { li, interim: "" });
  }
  const entry = items.get(id);
  if (startMs !== undefined) entry.li.querySelector(".time").textContent = clock(startMs);
  return entry;
}

function onEvent(event) {
  switch (event.type) {
    case "session.created":
      showMode(event.transcription_mode);
      setStatus("listening");
      break;
    case "session.updated":
      setStatus("listening");
      break;
    case "input_audio_buffer.speech_started":
      item(event.item_id, event.audio_start_ms);
      setStatus("speech");
      break;
    case "input_audio_buffer.speech_stopped":
      if (items.has(event.item_id)) items.get(event.item_id).li.dataset.state = "transcribing";
      setStatus("transcribing");
      break;
    case "conversation.item.input_audio_transcription.delta": {
      // Live text in the line itself: a streaming model's deltas, or turn-based interims.
      const entry = item(event.item_id);
      if (entry.li.dataset.state === "completed") break;
      entry.interim += event.delta;
      entry.li.dataset.deltas = String(Number(entry.li.dataset.deltas) + 1);
      const text = entry.li.querySelector(".text");
      text.textContent = entry.interim;
      text.className = "text live";
      $("interim").textContent = entry.interim;
      break;
    }
    case "conversation.item.input_audio_transcription.completed": {
      const entry = item(event.item_id);
      entry.li.dataset.state = "completed";
      const text = entry.li.querySelector(".text");
      text.textContent = event.transcript || "(no speech)";
      text.className = "text final";
      $("interim").textContent = "";
      setStatus("listening");
      break;
    }
    case "conversation.item.input_audio_transcription.failed": {
      const entry = item(event.item_id);
      entry.li.dataset.state = "failed";
      entry.li.querySelector(".text").textContent = `failed: ${event.error.message}`;
      break;
    }
    case "error":
      setStatus(`error: ${event.error.message}`, true);
      break;
  }
}

async function start() {
  $("start").disabled = true;
  const key = $("api-key").value.trim();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // Browsers cannot set headers on a WebSocket: the key travels as a subprotocol, as OpenAI's.
  const protocols = key ? ["realtime", `openai-insecure-api-key.${key}`] : [];
  socket = new WebSocket(`${scheme}://${location.host}/v1/realtime?intent=transcription`, protocols);
  socket.onmessage = (message) => onEvent(JSON.parse(message.data));
  socket.onclose = (close) => {
    setStatus(`closed (${close.code}${close.reason ? ": " + close.reason : ""})`, close.code !== 1000);
    stopAudio();
  };
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  const language = $("language").value.trim();
  socket.send(JSON.stringify({
    type: "session.update",
    session: {
      type: "transcription",
      audio: {
        input: {
          format: { type: "audio/pcm", rate: RATE_HZ },
          transcription: language ? { language } : {},
          turn_detection: { type: "server_vad", threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500 },
        },
      },
    },
  }));

  stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  audioContext = new AudioContext({ sampleRate: RATE_HZ });
  await audioContext.audioWorklet.addModule("/static/pcm16-worklet.js");
  const source = audioContext.createMediaStreamSource(stream);
  const writer = new AudioWorkletNode(audioContext, "pcm16-writer");
  writer.port.onmessage = (message) => {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "input_audio_buffer.append", audio: toBase64(message.data) }));
    }
  };
  source.connect(writer);
  $("stop").disabled = false;
}

function stopAudio() {
  if (stream) stream.getTracks().forEach((track) => track.stop());
  if (audioContext) audioContext.close();
  stream = null;
  audioContext = null;
  $("start").disabled = false;
  $("stop").disabled = true;
}

function stop() {
  stopAudio();
  if (socket) socket.close(1000);
  socket = null;
}

async function upload(submit) {
  submit.preventDefault();
  const form = new FormData();
  form.append("file", $("file").files[0]);
  form.append("response_format", "verbose_json");
  const key = $("api-key").value.trim();
  $("file-result").textContent = "transcribing…";
  const response = await fetch("/v1/audio/transcriptions", {
    method: "POST",
    body: form,
    headers: key ? { Authorization: `Bearer ${key}` } : {},
  });
  const body = await response.json();
  if (!response.ok) {
    $("file-result").textContent = `error: ${body.error.message}`;
    return;
  }
  $("file-result").textContent = body.segments
    .map((s) => `[${clock(s.start * 1000)} → ${clock(s.end * 1000)}] ${s.text}`)
    .join("\n") || body.text;
}

$("start").addEventListener("click", () => start().catch((e) => { setStatus(String(e), true); stopAudio(); }));
$("stop").addEventListener("click", stop);
$("upload").addEventListener("submit", (e) => upload(e).catch((err) => { $("file-result").textContent = String(err); }));
