"""Record a running runtime's behaviour as a fixture folder the fake server replays.

    python scripts/record_runtime.py --runtime vllm --url http://127.0.0.1:PORT --model NAME \
        --out tests/fixtures/vllm/live [--metrics-url URL] [--version V] [--hardware TEXT]

Works against any of the nine runtimes (and inferplane's embedded llama.cpp) while it serves:
start the runtime by hand (or let ``inferplane serve`` start it and pass the replica's URL), then
run this. Standard library only, so any Python runs it. Talks only to the URLs it is given.

Writes into ``--out`` (overwriting): ``health.json``, ``models.json``, ``version.json``, ``chat.json``
and ``chat_stream.txt`` (the same greedy request, plain and streamed with
``stream_options.include_usage``; the stream as raw bytes), ``timing.json`` (when each stream event
arrived, for the fake to replay), ``error_unknown_model.json``, ``error_invalid_max_tokens.json``,
``error_max_tokens_too_large.json`` (each records the status it got, also when the runtime accepted
the request), ``metrics_before.txt``/``metrics.txt`` (runtimes with Prometheus metrics), Ollama's
native ``api_*`` answers, and ``provenance.json``: "recorded live from <runtime> <version> on
<hardware>", the date, and the request behind each file.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

PROMPT = "Say hello in one short sentence."
METRICS_PATH = {"trtllm": "/prometheus/metrics"}
HEALTH_PATH = {"mlc": "/v1/models", "ollama": "/"}
VERSION_PATHS = ("/version", "/api/version", "/info", "/props")
NO_METRICS = {"ollama"}


def request(url: str, body: object | None = None, timeout: float = 600.0) -> tuple[int, bytes, str]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


def timed_stream(url: str, body: dict, timeout: float = 600.0) -> tuple[int, bytes, list[float]]:
    """POST ``body`` and read the SSE answer line by line: (status, raw bytes, arrival of each event)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    t0 = time.monotonic()
    conn.request("POST", u.path, json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    raw, offsets, in_event = b"", [], False
    while line := resp.readline():
        raw += line
        if line.strip() and not in_event:  # the first line of an event
            offsets.append(round(time.monotonic() - t0, 4))
            in_event = True
        elif not line.strip():
            in_event = False
    conn.close()
    return resp.status, raw, offsets


def chat_body(model: str, **extra: object) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": PROMPT}], "temperature": 0,
            "seed": 7, "max_tokens": 32, **extra}


def hardware() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    gpu = "no GPU" if not Path("/dev/nvidia0").exists() else "NVIDIA GPU"
    return f"{os.cpu_count()}-core {platform.machine()} ({cpu}){mem}, {gpu}"


def version_of(base: str) -> tuple[str | None, dict]:
    """The runtime's own version answer: /version (vLLM, MAX, TRT-LLM, SGLang), /api/version
    (Ollama), /info (TGI), /props (llama.cpp build_info)."""
    for path in VERSION_PATHS:
        status, raw, _ = request(base + path, timeout=30)
        if status != 200:
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        v = obj.get("version") or obj.get("build_info") or (obj.get("model_id") and obj.get("version"))
        if v:
            return str(v), {"path": path, "body": obj}
    return None, {}


class Recorder:
    def __init__(self, args: argparse.Namespace) -> None:
        self.base = args.url.rstrip("/")
        self.model = args.model
        self.runtime = args.runtime
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.metrics_url = args.metrics_url or (
            None if args.runtime in NO_METRICS else self.base + METRICS_PATH.get(args.runtime, "/metrics"))
        self.files: dict[str, dict] = {}

    def write(self, name: str, obj: object, how: str) -> None:
        path = self.out / name
        if isinstance(obj, bytes):
            path.write_bytes(obj)
        else:
            path.write_text(json.dumps(obj, indent=2) + "\n")
        self.files[name] = {"live": how}

    def error(self, name: str, body: dict, trigger: str) -> None:
        status, raw, ctype = request(self.base + "/v1/chat/completions", body)
        try:
            parsed: object = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        self.write(name, {"status": status, "content_type": ctype, "body": parsed, "trigger": trigger,
                          "request": body}, f"POST /v1/chat/completions: {trigger}")

    def run(self, version: str | None, hw: str) -> dict:
        health_path = HEALTH_PATH.get(self.runtime, "/health")
        status, raw, ctype = request(self.base + health_path, timeout=30)
        ready_body: object = raw.decode(errors="replace")
        if ctype.startswith("application/json") and raw:
            ready_body = json.loads(raw)
        self.write("health.json", {"path": health_path, "ready_status": status, "ready_body": ready_body,
                                   "ready_content_type": ctype or None, "loading_status": None,
                                   "loading_observed": False}, f"GET {health_path} once ready")
        found, answer = version_of(self.base)
        version = version or found or "unknown-version"
        if answer:
            self.write("version.json", answer, f"GET {answer['path']}")
        status, raw, _ = request(self.base + "/v1/models", timeout=30)
        self.write("models.json", json.loads(raw), "GET /v1/models")
        if self.metrics_url:
            self.write("metrics_before.txt", request(self.metrics_url, timeout=30)[1], "GET metrics before requests")

        status, raw, _ = request(self.base + "/v1/chat/completions", chat_body(self.model))
        if status != 200:
            raise SystemExit(f"chat failed: {status} {raw[:300]!r}")
        self.write("chat.json", json.loads(raw), "POST /v1/chat/completions (temperature 0, seed 7, max_tokens 32)")
        t = time.monotonic()
        request(self.base + "/v1/chat/completions", chat_body(self.model))
        chat_s = round(time.monotonic() - t, 4)
        stream = chat_body(self.model, stream=True, stream_options={"include_usage": True})
        status, raw, offsets = timed_stream(self.base + "/v1/chat/completions", stream)
        if status != 200:
            raise SystemExit(f"stream failed: {status} {raw[:300]!r}")
        self.write("chat_stream.txt", raw, "the same request, stream=true, stream_options.include_usage")
        self.write("timing.json", {"chunk_offsets_s": offsets, "chat_s": chat_s,
                                   "note": "arrival of each stream event after the request was sent; "
                                           "chat_s: one non-streamed request"}, "measured by this recorder")

        self.error("error_unknown_model.json", chat_body("no-such-model"), 'model="no-such-model"')
        self.error("error_invalid_max_tokens.json", chat_body(self.model, max_tokens=-1), "max_tokens=-1")
        self.error("error_max_tokens_too_large.json", chat_body(self.model, max_tokens=100000),
                   "max_tokens=100000 (beyond any context here)")
        if self.runtime == "ollama":
            self.ollama_native()
        if self.metrics_url:
            self.write("metrics.txt", request(self.metrics_url, timeout=30)[1], "GET metrics after the requests")
        provenance = {
            "runtime": self.runtime,
            "kind": "live",
            "recorded": f"recorded live from {self.runtime} {version} on {hw}",
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%MZ"),
            "url": self.base, "metrics_url": self.metrics_url, "model": self.model,
            "files": self.files,
        }
        (self.out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
        return provenance

    def ollama_native(self) -> None:
        native = {"model": self.model, "messages": [{"role": "user", "content": PROMPT}],
                  "options": {"temperature": 0, "seed": 7, "num_predict": 32}}
        self.write("api_tags.json", json.loads(request(self.base + "/api/tags")[1]), "GET /api/tags")
        self.write("api_chat.json", json.loads(request(self.base + "/api/chat", {**native, "stream": False})[1]),
                   "POST /api/chat stream=false")
        self.write("api_chat_stream.ndjson", request(self.base + "/api/chat", {**native, "stream": True})[1],
                   "POST /api/chat stream=true")
        gen = {"model": self.model, "prompt": PROMPT, "stream": False, "options": native["options"]}
        self.write("api_generate.json", json.loads(request(self.base + "/api/generate", gen)[1]),
                   "POST /api/generate stream=false")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runtime", required=True, help="vllm, sglang, max, lmdeploy, trtllm, tgi, llamacpp, "
                    "mlc, ollama or embedded")
    ap.add_argument("--url", required=True, help="the runtime's base URL, e.g. http://127.0.0.1:8000")
    ap.add_argument("--model", required=True, help="the served model name to request")
    ap.add_argument("--out", required=True, help="folder to write (e.g. tests/fixtures/vllm/live)")
    ap.add_argument("--metrics-url", help="where its Prometheus text is (default: URL/metrics; "
                    "TensorRT-LLM URL/prometheus/metrics; MAX serves it on its own port)")
    ap.add_argument("--version", help="the runtime's version, when it does not say it over HTTP")
    ap.add_argument("--hardware", help="what it runs on (default: read from /proc)")
    args = ap.parse_args()
    prov = Recorder(args).run(args.version, args.hardware or hardware())
    print(prov["recorded"])
    print("wrote", ", ".join(prov["files"]), "and provenance.json into", args.out)


if __name__ == "__main__":
    main()
