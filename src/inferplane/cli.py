"""The ``inferplane`` command line.

Commands: ``serve``, ``pull``, ``models``, ``runtimes``, ``config``, ``bench``, ``choose``, ``status``,
``reload``, ``keys``.
Flags map onto config fields (``inferplane config schema`` prints them all).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from inferplane import __version__
from inferplane.config.models import (
    ConfigError,
    InferplaneConfig,
    config_json_schema,
    env_overrides,
    load_config,
    parse_config,
)

__all__ = ["main"]


DESCRIPTION = ("One OpenAI-compatible endpoint in front of any LLM runtime: serve models,\n"
               "benchmark endpoints, and choose the runtime that serves your traffic best.")
EPILOG = """examples:
  inferplane serve                          serve SmolLM2 (pulled on first use) at http://127.0.0.1:8000/v1
  inferplane serve --model ./model.gguf     serve a GGUF file you have
  inferplane serve --config deploy.yaml     serve the deployments of a file (inferplane config schema)
  inferplane bench --workload synthetic --requests 20 --concurrency 2
  inferplane <command> --help               the options of one command"""


def _err(msg: str) -> int:
    print(f"inferplane: error: {msg}", file=sys.stderr)
    return 2


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- serve ---------------------------------------------------------------------------------

def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve models behind one OpenAI-compatible endpoint",
                       description="Serve the default model (smollm2) with no arguments, a GGUF file with "
                                   "--model, or a deployment file with --config.")
    p.add_argument("--config", "-c", type=Path, help="deployment file (YAML); see `inferplane config schema`")
    p.add_argument("--model", "-m", help="GGUF path or model-store name (default: smollm2)")
    p.add_argument("--name", help="model name clients send (default: the file's stem, or the store name)")
    p.add_argument("--runtime", default="embedded", help="runtime adapter (default: embedded)")
    p.add_argument("--host", help="listen address (default 127.0.0.1; env INFERPLANE_HOST)")
    p.add_argument("--port", type=int, help="listen port (default 8000; env INFERPLANE_PORT)")
    p.add_argument("--replicas", type=int, default=1, help="local replicas of the model (default 1)")
    p.add_argument("--parallel", type=int, default=4, help="concurrent sequences per replica (default 4)")
    p.add_argument("--ctx-size", type=int,
                   help="context tokens per sequence (default: the model's trained context, bounded by memory)")
    p.add_argument("--threads", type=int, help="CPU threads per replica (default: the cores split across replicas)")
    p.add_argument("--policy", default="prefix",
                   choices=["least_load", "round_robin", "power_of_two", "session", "prefix"],
                   help="routing among replicas (default prefix: cache-aware with load balancing)")
    p.add_argument("--api-key", action="append", default=[], help="require this bearer key (repeatable)")
    p.add_argument("--max-body-bytes", type=int, help="largest request body (default 8 MiB)")
    p.add_argument("--ready-timeout", type=float, help="seconds to wait for replicas (default 300)")
    p.add_argument("--log-dir", type=Path, help="replica logs (default ~/.cache/inferplane/logs)")
    p.add_argument("--access-log", metavar="PATH",
                   help="one JSON line per request to PATH ('-': stdout); replay with bench --workload trace:PATH")
    p.add_argument("--otlp-endpoint", metavar="URL",
                   help="export OpenTelemetry traces to this OTLP/HTTP collector, e.g. http://127.0.0.1:4318 "
                        "(needs pip install 'inferplane[tracing]')")
    p.add_argument("--workers", type=int, default=1,
                   help="gateway processes sharing the port (SO_REUSEPORT; this one runs the control plane, "
                        "the others follow it; default 1)")
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging (routing decisions, probes)")
    p.set_defaults(func=_cmd_serve)


def _serve_config(args: argparse.Namespace) -> InferplaneConfig:
    env = env_overrides()
    gateway: dict[str, Any] = {}
    host = args.host or env.get("INFERPLANE_HOST")
    port = args.port if args.port is not None else env.get("INFERPLANE_PORT")
    if host:
        gateway["host"] = host
    if port is not None:
        gateway["port"] = int(port)
    keys = args.api_key or [k for k in env.get("INFERPLANE_API_KEYS", "").split(",") if k]
    if keys:
        gateway["api_keys"] = keys
    if args.max_body_bytes:
        gateway["max_body_bytes"] = args.max_body_bytes
    if args.ready_timeout:
        gateway["ready_timeout_s"] = args.ready_timeout
    if args.access_log:
        gateway["access_log"] = args.access_log
    if args.otlp_endpoint:
        gateway["tracing"] = {"otlp_endpoint": args.otlp_endpoint}
    if args.config:
        if args.model:
            raise ConfigError("use either --config or --model, not both")
        base = load_config(args.config)
        merged = {**base.gateway.model_dump(), **gateway}
        return base.model_copy(update={"gateway": type(base.gateway).model_validate(merged)})
    model = args.model or "smollm2"
    name = args.name or _name_for(model)
    dep: dict[str, Any] = {
        "name": name, "runtime": args.runtime, "model": model, "replicas": args.replicas,
        "max_concurrent_sequences": args.parallel, "policy": args.policy,
    }
    if args.ctx_size:
        dep["context_length_tokens"] = args.ctx_size
    if args.threads:
        dep["threads"] = args.threads
    return parse_config({"gateway": gateway, "deployments": [dep]}, source="command line")


def _name_for(model: str) -> str:
    """The model name clients send for ``--model``: a store name as it is, a path's file or folder name."""
    if "/" not in model and not model.endswith(".gguf") and not Path(model).exists():
        return model
    path = Path(model)
    stem = path.stem if path.suffix and not path.is_dir() else path.name
    return re.sub(r"[^A-Za-z0-9._:-]+", "-", stem).strip("-._:") or "model"


def _cmd_serve(args: argparse.Namespace) -> int:
    from inferplane.models import ModelStore
    from inferplane.server import ServeError, prepare_deployments, run_server

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if not 1 <= args.workers <= 64:
        return _err(f"--workers must be 1..64, got {args.workers}")
    try:
        config = _serve_config(args)
        deployments = prepare_deployments(config, ModelStore(), _say)
    except (ConfigError, ServeError) as exc:
        return _err(str(exc))
    log_dir = args.log_dir or Path.home() / ".cache" / "inferplane" / "logs"
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        return asyncio.run(run_server(config, deployments, log_dir=log_dir, say=_say, config_path=args.config,
                                      workers=args.workers, reuse_port=args.reuse_port))
    except ServeError as exc:
        return _err(str(exc))


# -- models ----------------------------------------------------------------------------------

def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pull", help="fetch a named model into the local store",
                       description="Fetch a named model (see `inferplane models`) into the local store "
                                   "(~/.cache/inferplane/models, or $INFERPLANE_MODEL_CACHE). `serve` does this "
                                   "on first use.")
    p.add_argument("name", help="a model name from `inferplane models`")
    p.set_defaults(func=_cmd_pull)
    p = sub.add_parser("models", help="list the named models and which are in the local store",
                       description="List the models `serve` and `pull` know by name, their size, and whether "
                                   "they are in the local store already.")
    p.set_defaults(func=_cmd_models)


def _cmd_pull(args: argparse.Namespace) -> int:
    from inferplane.models import ModelError, ModelStore

    try:
        path = ModelStore().resolve(args.name, progress=_say)
    except ModelError as exc:
        return _err(str(exc))
    print(path)
    return 0


def _cmd_models(_args: argparse.Namespace) -> int:
    from inferplane.models import CATALOG, ModelError, ModelStore

    store = ModelStore()
    print(f"{'NAME':<14} {'SIZE':>8}  {'LOCAL':<5}  DESCRIPTION")
    for m in CATALOG.values():
        try:
            store.get(m, fetch=False)
            local = "yes"
        except ModelError:
            local = "no"
        print(f"{m.name:<14} {m.size_bytes / 2**20:>6.0f}Mi  {local:<5}  {m.description}")
    return 0


# -- runtimes, config, status -------------------------------------------------------------------

def _add_runtimes(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runtimes", help="the runtimes inferplane drives, and what each supports",
                       description="The runtimes inferplane drives (a deployment's `runtime`), what each supports, "
                                   "and with --check which are usable on this machine.")
    p.add_argument("--check", action="store_true", help="also say which are usable on this machine, and why not")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_runtimes)


def _cmd_runtimes(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from inferplane.runtimes import adapter_names, get_adapter
    from inferplane.runtimes.load_signals import ROUTER_FALLBACK, load_signals

    rows = []
    for name in adapter_names():
        a = get_adapter(name)
        row: dict[str, Any] = {"runtime": name, **asdict(a.capabilities())}
        row["load_signals"], row["load_signals_note"] = load_signals(name)
        if args.check:
            av = a.availability()
            row["usable"], row["reason"] = av.usable, av.reason
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    flags = {"multi_gpu": "MULTI-GPU", "prefix_caching": "PREFIX", "speculative_decoding": "SPEC",
             "structured_output": "STRUCT", "lora": "LORA", "embeddings": "EMBED", "pd_disaggregation": "PD"}
    fmt_w = max(len(",".join(r["weight_formats"])) for r in rows)
    hw_w = max(len(",".join(r["hardware"])) for r in rows)
    print(f"{'RUNTIME':<9} {'API':<7} {'WEIGHTS':<{fmt_w}}  {'HARDWARE':<{hw_w}}  "
          + " ".join(h for h in flags.values()))
    for r in rows:
        marks = " ".join(("yes" if r[f] else "-").ljust(len(h)) for f, h in flags.items())
        print(f"{r['runtime']:<9} {r['api']:<7} {','.join(r['weight_formats']):<{fmt_w}}  "
              f"{','.join(r['hardware']):<{hw_w}}  {marks}".rstrip())
    print("\nSPEC = speculative decoding, STRUCT = structured output, PD = prefill/decode disaggregation; "
          "API openai = bytes pass through, others are translated.")
    print("\nLOAD SIGNALS the runtime's metrics give the router (when missing, the router uses "
          f"{ROUTER_FALLBACK})")
    for r in rows:
        signals = ", ".join(r["load_signals"]) or "none"
        note = f"  ({r['load_signals_note']})" if r["load_signals_note"] else ""
        print(f"  {r['runtime']:<9} {signals}{note}")
    if args.check:
        print("\nUSABLE HERE")
        for r in rows:
            print(f"  {r['runtime']:<9} {'yes' if r['usable'] else 'no ':<4} {r['reason']}")
    return 0


def _add_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print the deployment file's JSON schema, or validate a file",
                       description="The deployment file: its JSON schema, or a check of a file against "
                                   "everything `serve` would refuse.")
    csub = p.add_subparsers(dest="config_cmd", required=True)
    csub.add_parser("schema", help="print the JSON schema").set_defaults(func=_cmd_config_schema)
    v = csub.add_parser("validate", help="check a deployment file as `serve` would, without starting anything")
    v.add_argument("file", type=Path)
    v.set_defaults(func=_cmd_config_validate)


def _cmd_config_schema(_args: argparse.Namespace) -> int:
    print(json.dumps(config_json_schema(), indent=2))
    return 0


def _cmd_config_validate(args: argparse.Namespace) -> int:
    from inferplane.models import ModelStore
    from inferplane.server import ServeError, prepare_deployments

    try:
        cfg = load_config(args.file)
        prepare_deployments(cfg, ModelStore(), lambda _msg: None, fetch=False)
    except (ConfigError, ServeError) as exc:
        return _err(f"{args.file}: {exc}" if isinstance(exc, ServeError) else str(exc))
    print(f"{args.file}: ok ({len(cfg.deployments)} deployment(s): {', '.join(d.name for d in cfg.deployments)})")
    return 0


def _add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show the replicas of a running gateway",
                       description="Ask a running `inferplane serve` for its replicas: runtime, readiness, "
                                   "requests in flight and served.")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the gateway (default http://127.0.0.1:8000)")
    p.add_argument("--api-key", help="bearer key, when the gateway requires one (env INFERPLANE_API_KEYS: the first)")
    p.add_argument("--ca-file", help="PEM CA bundle that signed an https:// gateway's certificate (gateway.tls)")
    p.set_defaults(func=_cmd_status)


def _admin_call(args: argparse.Namespace, path: str, method: str = "GET") -> Any:
    """JSON from the gateway's admin API; raises _AdminError with a message for the user."""
    env = env_overrides()
    key = args.api_key or env.get("INFERPLANE_ADMIN_KEY") or (env.get("INFERPLANE_API_KEYS", "").split(",")[0] or None)
    req = urllib.request.Request(args.url.rstrip("/") + path, method=method,
                                 headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        tls = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
    except (OSError, ssl.SSLError) as exc:
        raise _AdminError(f"--ca-file {args.ca_file}: cannot load it as a PEM CA bundle ({exc})") from exc
    try:
        with urllib.request.urlopen(req, timeout=60, context=tls) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        hint = " (pass --api-key: the admin key when the gateway has one)" if exc.code in (401, 403) else ""
        try:
            detail = ": " + json.load(exc)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            detail = ""
        raise _AdminError(f"{args.url} answered {exc.code} {exc.reason}{hint}{detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise _AdminError(f"cannot reach {args.url}: {exc}") from exc


class _AdminError(Exception):
    pass


def _add_reload(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reload", help="make a running gateway re-read its deployment file and apply the changes",
                       description="Ask a running `inferplane serve --config FILE` to re-read FILE and apply the "
                                   "difference (added, removed and changed deployments; unchanged replicas keep "
                                   "running). Same as sending it SIGHUP.")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the gateway (default http://127.0.0.1:8000)")
    p.add_argument("--api-key", help="bearer key, when the gateway requires one (env INFERPLANE_API_KEYS: the first)")
    p.add_argument("--ca-file", help="PEM CA bundle that signed an https:// gateway's certificate (gateway.tls)")
    p.set_defaults(func=_cmd_reload)


def _cmd_reload(args: argparse.Namespace) -> int:
    try:
        report = _admin_call(args, "/admin/reload", "POST")
    except _AdminError as exc:
        return _err(str(exc))
    for what in ("added", "removed", "changed", "unchanged"):
        if report.get(what):
            print(f"{what}: {', '.join(report[what])}")
    if report.get("restart_needed"):
        print(f"note: {report['restart_needed']}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    try:
        data = _admin_call(args, "/admin/endpoints")
        deployments = _admin_call(args, "/admin/deployments")["deployments"]
    except _AdminError as exc:
        return _err(str(exc))
    print(f"{'DEPLOYMENT':<16} {'DESIRED':>7} {'READY':>5} {'STARTING':>8} {'DRAINING':>8} {'EXTERNAL':>8}  AUTOSCALE")
    for d in deployments:
        a = d["autoscale"]
        auto = f"{a['min_replicas']}..{a['max_replicas']}" if a else "off"
        print(f"{d['name']:<16} {d['desired']:>7} {d['ready']:>5} {d['starting']:>8} {d['draining']:>8} "
              f"{d['external']:>8}  {auto}")
    print()
    print(f"{'ENDPOINT':<16} {'RUNTIME':<10} {'READY':<6} {'IN-FLIGHT':>9} {'REQUESTS':>9}  URL")
    for e in data["endpoints"]:
        print(f"{e['id']:<16} {e['runtime']:<10} {'yes' if e['ready'] else 'no':<6} {e['in_flight']:>9} "
              f"{e['requests_total']:>9}  {e['url']}")
        if not e["ready"] and e.get("last_error"):
            print(f"{'':<16} why: {e['last_error']}")
    return 0


def _add_keys(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="make API keys for tenants (printed with the hash the config stores)",
                       description="Keys are stored hashed: gateway.tenants[].key_sha256 holds a key's SHA-256, "
                                   "and only the client holds the key.")
    ksub = p.add_subparsers(dest="keys_command", required=True)
    n = ksub.add_parser("new", help="print a fresh random key and its SHA-256")
    n.add_argument("--tenant", default="my-team", help="tenant name for the config snippet (default my-team)")
    n.set_defaults(func=_cmd_keys_new)
    h = ksub.add_parser("hash", help="print the SHA-256 of a key you have (read from stdin)")
    h.set_defaults(func=_cmd_keys_hash)


def _cmd_keys_new(args: argparse.Namespace) -> int:
    from inferplane.gateway.tenancy.keys import new_key

    key, digest = new_key()
    print(f"key:        {key}")
    print(f"key_sha256: {digest}")
    print()
    print("# give the key to the tenant; put this in the deployment file:")
    print("gateway:\n  tenants:")
    print(f"    - name: {args.tenant}\n      key_sha256: {digest}")
    return 0


def _cmd_keys_hash(_args: argparse.Namespace) -> int:
    from inferplane.gateway.tenancy.keys import hash_key

    key = sys.stdin.readline().strip()
    if not key:
        return _err("no key on stdin (printf %s KEY | inferplane keys hash)")
    print(hash_key(key))
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    try:
        from inferplane.bench import cli as bench_cli
    except ImportError:
        return
    p = sub.add_parser("bench", help="load-test an OpenAI-compatible endpoint",
                       description="Load-test an OpenAI-compatible endpoint (a gateway or a runtime) and report "
                                   "TTFT, TPOT, ITL, E2E, throughput and goodput; writes JSON, CSV and HTML "
                                   "(see docs/bench.md).")
    bench_cli.add_arguments(p)
    p.set_defaults(func=bench_cli.run)


def _add_choose(sub: argparse._SubParsersAction) -> None:
    try:
        from inferplane.choose import cli as choose_cli
    except ImportError:
        return
    p = sub.add_parser("choose", help="measure the runtimes that can serve a model here, rank them, write a deployment",
                       description="Compatibility, measurement under your SLOs and a deployment file for the winner.")
    choose_cli.add_arguments(p)
    p.set_defaults(func=choose_cli.run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inferplane", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"inferplane {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    _add_models(sub)
    _add_runtimes(sub)
    _add_config(sub)
    _add_status(sub)
    _add_reload(sub)
    _add_keys(sub)
    _add_bench(sub)
    _add_choose(sub)
    return parser


def _own_parsers(parser: argparse.ArgumentParser) -> None:
    """Each subcommand's parser remembers itself, so errors show that command's usage."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sp in action.choices.values():
                sp.set_defaults(_parser=sp)
                _own_parsers(sp)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    _own_parsers(parser)
    args, extra = parser.parse_known_args(argv)
    if extra:
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    return int(args.func(args))
