"""``egress policy``: ``replay`` re-decides logged traffic with a candidate policy and shows what
flips; ``bundle build`` writes the policy and data as an OPA bundle, ``bundle serve`` serves it
for OPA to pull (``egress/policy/bundle.py``, ``egress/policy/bundle_server.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from egress.cli.output import log_paths, print_table


def cmd_replay(a: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from egress.audit.replay import replay

    paths = log_paths(a)
    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        TextColumn("{task.completed} events"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("replay", total=None)
        report = replay(
            paths,
            Path(a.policy),
            Path(a.data) if a.data else None,
            progress=lambda n: bar.advance(task, n),
        )
    print(
        f"{report.events} events, {report.replayed} replayed, {report.skipped} skipped "
        f"(no policy verdict); {report.deny_to_allow} deny->allow, "
        f"{report.allow_to_deny} allow->deny"
    )
    for title, groups in (
        ("deny -> allow (widens access)", report.widened),
        ("allow -> deny (narrows access)", report.narrowed),
    ):
        if not groups:
            continue
        rows = []
        for (agent, host), flips in sorted(groups.items()):
            ex = flips[0]
            rows.append(
                (agent, host, len(flips), f"{ex.method} {ex.path}", f"{ex.before} -> {ex.after}")
            )
        print_table(["agent", "host", "flips", "example", "reason"], rows, title=title)
    return 1 if report.deny_to_allow else 0


def configure(parser: argparse.ArgumentParser) -> None:
    pol = parser.add_subparsers(dest="sub", required=True)
    rep = pol.add_parser("replay", help="re-decide logged traffic with a candidate policy")
    rep.add_argument("paths", nargs="*", metavar="LOGS", help="decision logs")
    rep.add_argument("--policy", required=True, help="candidate policy directory")
    rep.add_argument("--data", help="candidate data file")
    rep.set_defaults(func=cmd_replay)
    _configure_bundle(pol.add_parser("bundle", help="ship policy and data as an OPA bundle"))


def cmd_bundle_build(a: argparse.Namespace) -> int:
    from egress.policy.bundle import write_bundle

    bundle = write_bundle(Path(a.policy_dir), _data(a), Path(a.output))
    print(f"{a.output}: revision {bundle.revision}, roots {', '.join(bundle.roots)}")
    return 0


def cmd_bundle_serve(a: argparse.Namespace) -> int:
    import time

    from egress.policy.bundle import BUNDLE_RESOURCE, opa_config
    from egress.policy.bundle_server import BundleServer

    host, _, port = a.listen.rpartition(":")
    server = BundleServer(
        Path(a.policy_dir), _data(a), host or "127.0.0.1", int(port), poll_interval=a.poll
    ).start()
    print(
        f"egress: serving {server.url}/{BUNDLE_RESOURCE} "
        f"(revision {server.source.bundle.revision}); OPA config:\n{opa_config(server.url)}",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def _data(a: argparse.Namespace) -> Path | None:
    return Path(a.data_file) if a.data_file else None


def _configure_bundle(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bundle_cmd", required=True)
    build = sub.add_parser("build", help="write an OPA bundle (.tar.gz)")
    serve = sub.add_parser("serve", help="serve the bundle at /bundles/egress.tar.gz")
    for p in (build, serve):
        p.add_argument("--policy-dir", default="policies", help="directory of .rego modules")
        p.add_argument("--data-file", help="policy data (JSON)")
    build.add_argument("-o", "--output", default="bundle.tar.gz", help="bundle file to write")
    build.set_defaults(func=cmd_bundle_build)
    serve.add_argument("--listen", default="127.0.0.1:8282", help="host:port to listen on")
    serve.add_argument("--poll", type=float, default=1.0, help="seconds between file checks")
    serve.set_defaults(func=cmd_bundle_serve)
