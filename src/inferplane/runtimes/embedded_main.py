"""Child-process entry of the embedded runtime: runs xllamacpp's server until SIGTERM.

Usage (the supervisor builds this argv; see ``EmbeddedAdapter.launch_spec``)::

    python -m inferplane.runtimes.embedded_main --model M.gguf --alias NAME --port P \
        [--host 127.0.0.1] [--parallel 4] [--ctx-size 16384] [--threads N] [--no-cache-prompt]
        [--cache-ram-mib N] [--batch-size N] [--chat-template-file F.jinja]
        [--embedding [--pooling mean|cls|last]]

``--embedding`` starts llama.cpp in embedding mode (``CommonParams.embedding``; its server then
sets n_batch = n_ubatch). OpenAI's ``/v1/embeddings`` refuses pooling "none" ("Pooling type
'none' is not OAI compatible"), which is what a chat model's GGUF declares by leaving
``<arch>.pooling_type`` out; so without ``--pooling`` the file's own pooling is used, and mean
pooling when it names none or "none".
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="inferplane.runtimes.embedded_main")
    p.add_argument("--model", required=True)
    p.add_argument("--alias", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--ctx-size", type=int, default=16384)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=0)
    p.add_argument("--no-cache-prompt", action="store_true")
    p.add_argument("--chat-template-file", default=None,
                   help="Jinja chat template to use instead of the one in the GGUF (llama-server's flag)")
    p.add_argument("--embedding", action="store_true", help="serve embeddings (llama.cpp's --embedding)")
    p.add_argument("--pooling", choices=("mean", "cls", "last"), default=None)
    p.add_argument("--cache-ram-mib", type=int, default=-2,
                   help="host-RAM prompt cache shared by the slots, MiB (0 = off; default: llama.cpp's)")
    return p.parse_args(argv)


def _pooling(model: str, asked: str | None) -> str:
    if asked:
        return asked
    from inferplane.choose.model_info import ModelInfoError, read_gguf

    try:
        own = read_gguf(model).pooling
    except ModelInfoError:
        own = None  # llama.cpp reports the bad file itself, below
    return own if own in ("mean", "cls", "last") else "mean"


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    import xllamacpp  # imported late: its import is the slow part and --help should not pay it

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}
    params.hostnames = [args.host]
    params.port = args.port
    params.n_parallel = args.parallel
    params.n_ctx = args.ctx_size
    params.cont_batching = True
    params.cache_prompt = not args.no_cache_prompt
    params.endpoint_metrics = True
    params.endpoint_slots = True
    params.ui = False
    if args.threads > 0:
        params.cpuparams.n_threads = args.threads
        params.cpuparams_batch.n_threads = args.threads
    if args.cache_ram_mib >= 0:
        params.cache_ram_mib = args.cache_ram_mib
    if args.batch_size > 0:
        params.n_batch = args.batch_size

    if args.chat_template_file:
        with open(args.chat_template_file, encoding="utf-8") as fh:
            params.chat_template = fh.read()
    if args.embedding:
        params.embedding = True
        params.pooling_type = getattr(xllamacpp.llama_pooling_type,
                                      f"LLAMA_POOLING_TYPE_{_pooling(args.model, args.pooling).upper()}")

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = xllamacpp.Server(params)  # starts the HTTP server threads and returns
    except RuntimeError:  # llama.cpp logged its own lines above; this is the one to read
        print(f"cannot load model file {args.model}: llama.cpp could not load it (its log lines above say "
              "why; a truncated or damaged download, or an architecture this llama.cpp does not know)",
              file=sys.stderr, flush=True)
        return 1
    print(f"embedded runtime listening on {server.listening_address}", flush=True)
    stop.wait()
    # llama.cpp's server shutdown can block on in-flight slots; the process is going
    # away and holds no state worth flushing, so leave without running destructors.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
