"""fmkit serve: an HTTP API over bundles (micro-batching, API keys, limits, audit log)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fmkit.cli.common import add_verify_flag


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "serve", help="serve bundles over HTTP with API keys and dynamic batching",
        description="Serve bundles: POST /v1/models/NAME:predict, GET /v1/models, /healthz, /readyz, /metrics, "
        "/docs (OpenAPI), /ui (dashboard), and for assistants POST /v1/assistants/NAME:ask and /ui/assistants/NAME "
        "(chat page), for monitors POST /v1/monitors/NAME:ingest, GET /v1/monitors/NAME/alerts and /ui/monitors/NAME, "
        "with --watch GET /v1/models/NAME/drift. Requests need `Authorization: Bearer KEY` (fmkit keys create). "
        "Binds to 127.0.0.1 unless --host says otherwise.",
        epilog="example: fmkit serve --bundle reviews=models/reviews-int8 --watch --assistant support=assistants/acme "
        "--monitor news=monitor.yaml",
    )
    parser.add_argument("--bundle", action="append", default=[], metavar="NAME=PATH",
                        help="a model to serve (repeatable)")
    parser.add_argument("--assistant", action="append", default=[], metavar="NAME=DIR",
                        help="a support assistant to serve (repeatable; `fmkit assistant build` makes DIR): "
                        "POST /v1/assistants/NAME:ask, chat page at /ui/assistants/NAME")
    parser.add_argument("--monitor", action="append", default=[], metavar="NAME=YAML",
                        help="a news monitor to serve (repeatable; the `fmkit monitor --config` file): POST "
                        "/v1/monitors/NAME:ingest, GET /v1/monitors/NAME/alerts, trend page /ui/monitors/NAME; its "
                        "run folder is the file's `out` or WORKSPACE/monitors/NAME")
    parser.add_argument("--recommender", action="append", default=[], metavar="NAME=DIR",
                        help="a recommender to serve (repeatable; `fmkit recommend train` makes DIR): POST "
                        "/v1/recommenders/NAME:recommend")
    parser.add_argument("--max-events", type=int, default=1000, help="events per :ingest request (default: 1000)")
    parser.add_argument("--generate", action="store_true",
                        help="assistants draft an answer grounded in the retrieved passages (SmolLM2-135M-Instruct, "
                        "sources cited; a draft citing nothing retrieved is refused) when the FAQ has no close "
                        "match; loads ~0.6 GB at start, ~1-4 s per draft on 2 cores")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument("--workspace", default=".",
                        help="holds .fmkit/serve.sqlite with keys and the audit log (unless --store says otherwise)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="worker processes on one port (default: 1); the kernel spreads connections over them. "
                        "Each loads every model (memory xN); keys, revocations and the audit log are shared through "
                        "the store; rate limits, batching, drift windows and /metrics are per worker, and :load/"
                        "unload are refused (docs/serve_scale.md)")
    add_store_argument(parser)
    parser.add_argument("--key-cache-seconds", type=float, default=2.0, metavar="S",
                        help="how long a worker trusts a key it has read (default: 2): a revocation reaches every "
                        "worker and replica within S seconds")
    parser.add_argument("--max-batch", type=int, default=32, help="texts per forward pass (default: 32)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="batching window (default: 5 ms; 0 disables)")
    parser.add_argument("--inference-batch", type=int, default=16,
                        help="texts per model call within a batch, length-sorted (default: 16)")
    parser.add_argument("--queue-size", type=int, default=256, help="waiting requests per model before 503")
    parser.add_argument("--threads", type=int, help="runtime threads per model")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16", "auto"],
                        help="weights of PyTorch bundles (default: as the bundle stores them). bf16: half the memory, "
                        "~2x the throughput "
                        "on CPUs with AVX-512 BF16, accuracy within a few test rows (docs/benchmarks.md); fp16: CUDA "
                        "only; auto: the fastest the device has. ONNX bundles keep their own types")
    parser.add_argument("--rate-limit", type=float, default=50.0, help="requests per second per key (default: 50)")
    parser.add_argument("--rate-burst", type=int, default=100, help="token-bucket size per key (default: 100)")
    parser.add_argument("--log-inputs", action="store_true", help="store request texts in the audit log")
    parser.add_argument("--no-auth", action="store_true", help="no API keys (local experiments only)")
    parser.add_argument("--bundle-root", metavar="DIR",
                        help="admin :load requests may only load bundles whose real path (symlinks and .. resolved) "
                        "is inside DIR (default: any directory the server can read)")
    parser.add_argument("--max-image-bytes", type=int, default=1_000_000,
                        help="encoded bytes per image in a predict request (default: 1000000; 413 above)")
    parser.add_argument("--max-image-pixels", type=int, default=4_194_304,
                        help="width x height per image, checked on its header before decoding (default: 4194304)")
    parser.add_argument("--watch", action="store_true",
                        help="drift watch on every served model: its recent traffic vs its bundle's test split (PSI of "
                        "predicted labels, mean-confidence drop, MMD on the model's features) in /metrics and GET "
                        "/v1/models/NAME/drift; alerts to WORKSPACE/.fmkit/drift/NAME/alerts.jsonl and --watch-webhook")
    parser.add_argument("--watch-window", type=int, default=500, help="served rows per drift window (default: 500)")
    parser.add_argument("--watch-min-rows", type=int, default=100,
                        help="rows a window needs before drift is judged (default: 100)")
    parser.add_argument("--watch-webhook", metavar="URL", help="POST each drift alert as JSON to URL (retried)")
    add_verify_flag(parser)
    return parser


def add_store_argument(parser) -> None:
    parser.add_argument("--store", metavar="URL",
                        help="database of API keys, revocations and the audit log (default: sqlite:///WORKSPACE/"
                        ".fmkit/serve.sqlite). postgresql://USER@HOST:5432/DB lets replicas on several machines "
                        "share them; keep its password off the command line with PGPASSWORD or ~/.pgpass")


def parse_bundles(items: list[str], flag: str = "--bundle", example: str = "reviews=models/reviews-int8",
                  taken: dict[str, str] | None = None) -> dict[str, str]:
    """NAME=PATH items -> {name: path}; a name may not repeat, nor reuse one in ``taken`` (key allowlists
    name models and assistants alike)."""
    from fmkit.errors import BadInputError
    from fmkit.serve.config import model_name_problem

    bundles, taken = {}, taken or {}
    for item in items:
        name, separator, path = item.partition("=")
        if not separator or not name or not path:
            raise BadInputError(f"{flag} {item!r}: write NAME=PATH, e.g. {flag} {example}")
        if problem := model_name_problem(name):
            raise BadInputError(f"{flag} {item!r}: {problem}")
        if name in bundles or name in taken:
            raise BadInputError(f"{flag} {item!r}: the name {name!r} is already given to "
                                f"{bundles.get(name) or taken[name]}; each served model or assistant needs its own name")
        bundles[name] = path
    return bundles


def run(args) -> int:
    from fmkit.bundle import open_bundle
    from fmkit.errors import BadInputError
    from fmkit.serve.config import ServeConfig
    from fmkit.serve.keys import KeyStore
    from fmkit.serve.workers import serve

    bundles = parse_bundles(args.bundle)
    assistants = parse_bundles(args.assistant, "--assistant", "support=assistants/acme", taken=bundles)
    monitors = parse_bundles(args.monitor, "--monitor", "news=monitor.yaml", taken={**bundles, **assistants})
    recommenders = parse_bundles(args.recommender, "--recommender", "shop=recommenders/shop",
                                 taken={**bundles, **assistants, **monitors})
    if not (bundles or assistants or monitors or recommenders):
        raise BadInputError("nothing to serve: pass --bundle NAME=PATH, --assistant NAME=DIR, --monitor NAME=YAML "
                            "and/or --recommender NAME=DIR")
    config = ServeConfig(bundles=bundles, assistants=assistants, monitors=monitors, recommenders=recommenders,
                         max_events=args.max_events, generate=args.generate,
                         host=args.host, port=args.port, workspace=args.workspace,
                         store=args.store, workers=args.workers, key_cache_seconds=args.key_cache_seconds,
                         max_batch=args.max_batch if args.max_wait_ms > 0 else 1, max_wait_ms=args.max_wait_ms,
                         queue_size=args.queue_size, inference_batch=args.inference_batch, threads=args.threads,
                         precision=args.precision, rate_per_second=args.rate_limit,
                         rate_burst=args.rate_burst, log_inputs=args.log_inputs,
                         auth=not args.no_auth, bundle_root=args.bundle_root,
                         max_image_bytes=args.max_image_bytes, max_image_pixels=args.max_image_pixels,
                         watch=args.watch, watch_window=args.watch_window, watch_min_rows=args.watch_min_rows,
                         watch_webhook=args.watch_webhook)
    for path in bundles.values():
        manifest = open_bundle(path)  # a bad path or a changed bundle fails here, before the server starts
        if args.watch:
            from fmkit.evaluate.reference import read_reference

            read_reference(Path(path), manifest)  # no (or an edited) drift reference: says how to add one
    for name, path in assistants.items():  # a changed or wrong directory fails here too, before the server starts
        if not Path(path).is_dir():
            raise BadInputError(f"--assistant {name}={path}: no such directory; make one with `fmkit assistant build`")
        from fmkit.apps.assistant.store import open_manifest

        open_manifest(Path(path))  # digests and seal, without loading its encoder
    from fmkit.serve.routes.monitors import read_monitor_config

    for name, path in monitors.items():  # a bad or missing YAML fails here, before the server starts
        read_monitor_config(Path(path), Path(args.workspace))
    for name, path in recommenders.items():
        if not Path(path).is_dir():
            raise BadInputError(f"--recommender {name}={path}: no such directory; make one with "
                                "`fmkit recommend train`")
        from fmkit.apps.recommend.store import open_manifest as open_recommender

        open_recommender(Path(path))  # digests, without loading its models
    # the store answers and has its tables before any worker starts: a wrong URL is exit 2 naming it
    KeyStore(config.workspace, config.key_cache_seconds, config.store).close()
    return serve(config)
