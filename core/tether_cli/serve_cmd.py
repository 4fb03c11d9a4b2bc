"""`tether serve`: run the local stand-in services in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the local services (render farm, ...) on 127.0.0.1 until Ctrl-C",
        description="Run the local stand-in services on one port, one path prefix per service (e.g. /farm).",
    )
    parser.add_argument("--port", type=int, default=None,
                        help="port to listen on (default: TETHER_LOCAL_PORT, else the config file's local_port, else "
                             "8765: the port the 'local' profile's clients use; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1). Beyond loopback (e.g. 0.0.0.0) every service "
                             "wants an access key instead of its local one: TETHER_SERVE_ACCESS_KEY, or one made up "
                             "and printed")
    parser.add_argument("--workers", type=int, default=2, help="render worker processes of the local farm (default 2)")
    store = parser.add_mutually_exclusive_group()
    store.add_argument("--store", type=Path, default=None,
                       help="folder for uploads, jobs and outputs, kept between runs (default: the local "
                            "services store that `tether config show` names)")
    store.add_argument("--temporary", action="store_true",
                       help="a throwaway store, deleted on exit: jobs and uploads do not outlive this run")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from tether_services.server import LocalServices
    except ImportError as exc:
        print(f"tether: error: the local services are not installed ({exc.name} is missing); "
              "run `pip install 'tether[services,render]'`", file=sys.stderr)
        return 1
    if args.workers < 1:
        print("tether: error: --workers must be 1 or more", file=sys.stderr)
        return 2
    from tether.settings import load_settings, local_store_dir

    # the port the 'local' profile's clients are pointed at, so they find what is served
    port = args.port if args.port is not None else load_settings(args.profile).local_port
    store = args.store
    if store is None and not args.temporary:
        # kept between runs, like a real service: jobs an artist's DCC recorded are still there after a restart
        store = local_store_dir()
    import os

    services = LocalServices(args.host, port, state_dir=store, workers=args.workers, log_level="info",
                             access_key=os.environ.get("TETHER_SERVE_ACCESS_KEY") or None)
    try:
        services.start()
    except OSError as exc:
        print(f"tether: error: {exc}", file=sys.stderr)
        return 1
    try:
        kept = "deleted on exit" if store is None else "kept between runs; --temporary for a throwaway one"
        print(f"Tether local services at {services.base_url}  (store: {services.state_dir}, {kept})")
        for name in services.names:
            print(f"  {name:<10} {services.url(name)}")
        if "farm" in services.names and services.access_key is None:
            from tether_services.farm.engine import EMAIL, PASSWORD

            print(f"  farm login: {EMAIL} / {PASSWORD} (a local test account, not a secret)")
        if services.access_key is not None:
            _warn_exposed(services)
        print("Press Ctrl-C to stop.", flush=True)
        services.wait()
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
    finally:
        services.stop()
    return 0


def _warn_exposed(services: Any) -> None:
    key = services.access_key
    print(f"WARNING: listening on {services.host}, beyond this machine: anyone who can reach port {services.port} "
          "can reach these services.\n"
          f"  Every service wants the access key instead of its local one: Autopilot x-api-key {key}, TensorPix "
          f"Token {key}, Move authorization {key}, Clipzy Bearer {key}, the farm's password {key}; the control "
          "routes want X-Tether-Access-Key.\n"
          "  Set TETHER_SERVE_ACCESS_KEY to choose it; keep to 127.0.0.1 unless others must connect.",
          file=sys.stderr, flush=True)
