"""Markdown tables, the issue's targets checked, and the PNG curve for ``bench/fleet.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

Results = dict[int, dict[str, Any] | str]
NA = "-"


def _f(v: Any, fmt: str = "{:.2f}") -> str:
    return NA if v is None or v != v else fmt.format(v)


def _done(results: Results) -> dict[int, dict[str, Any]]:
    return {n: r for n, r in results.items() if isinstance(r, dict)}


def decisions_table(results: Results) -> list[str]:
    rows = [
        "| agents | data | embedded: load s | uncached p50 / p99 ms (in-engine p99) | "
        "10% miss dec/s | "
        "reload visible s | RSS MiB (proxy + cutter) | OPA: load s | ready ms | "
        "uncached p50 / p99 ms | 10% miss dec/s | RSS MiB | host load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, r in results.items():
        if isinstance(r, str):
            rows.append(f"| {n} | {r} |" + " |" * 11)
            continue
        e, o = r["emb_uncached"], r.get("opa_uncached") or {}
        ready = r.get("opa_ready_s", float("nan"))
        rows.append(
            f"| {n:,} | {r['data_mb']:.1f} MB | {r['emb_load_s']:.2f} | "
            f"{_f(e['p50'])} / {_f(e['p99'])} ({_f(e.get('eval_p99'))}) | "
            f"{_f(r['emb_throughput']['rps'], '{:,.0f}')} | "
            f"{_f(r['stalls']['reload']['reload_s'])} | "
            f"{r['rss_engine']:.0f} + {r['rss_cutter']:.0f} | "
            f"{_f(r.get('opa_load_s'))} | {_f(ready * 1000, '{:.1f}')} | "
            f"{_f(o.get('p50'))} / {_f(o.get('p99'))} | "
            f"{_f((r.get('opa_throughput') or {}).get('rps'), '{:,.0f}')} | "
            f"{_f(r.get('opa_rss'), '{:.0f}')} | "
            f"{_f(r.get('load_before'), '{:.1f}')}-{_f(r.get('load_after'), '{:.1f}')} |"
        )
    return rows


def stall_table(results: Results) -> list[str]:
    rows = [
        "| agents | phase | other agent's cached call p99 / max ms | loop lag p99 / max ms "
        "| note |",
        "|---|---|---|---|---|",
    ]
    for n, r in _done(results).items():
        for phase in ("baseline", "miss", "reload"):
            s = r["stalls"][phase]
            note = ""
            if phase == "miss":
                note = f"one agent missing: {s['misses_per_s']:.0f} decisions/s"
            elif phase == "reload":
                note = f"agent 0's rule visible after {_f(s['reload_s'])} s"
            rows.append(
                f"| {n:,} | {phase} | {s['call_p99']:.3f} / {s['call_max']:.2f} | "
                f"{s['lag_p99']:.2f} / {s['lag_max']:.2f} | {note} |"
            )
    return rows


def targets(results: Results) -> list[str]:
    """The issue's targets, each met or missed by how much (or not measured)."""
    done = _done(results)
    out = []

    def line(name: str, ok: bool | None, detail: str) -> None:
        mark = "not measured" if ok is None else ("met" if ok else "MISSED")
        out.append(f"- {name}: **{mark}** ({detail})")

    p99 = {n: r["emb_uncached"]["p99"] for n, r in done.items()}
    v = p99.get(10_000)
    line("uncached embedded p99 <= 2 ms at 10k", None if v is None else v <= 2, f"{_f(v)} ms")
    if 50_000 in p99 and 100 in p99:
        ratio = p99[50_000] / p99[100]
        line("p99 at 50k <= 1.5x at 100", ratio <= 1.5, f"{ratio:.2f}x")
    else:
        line("p99 at 50k <= 1.5x at 100", None, "needs both sizes")
    for n, r in done.items():
        base, miss = r["stalls"]["baseline"], r["stalls"]["miss"]
        ratio = miss["call_p99"] / base["call_p99"] if base["call_p99"] else float("inf")
        line(f"{n:,}: other agent's p99 while one misses <= 2x", ratio <= 2, f"{ratio:.2f}x")
    r10 = done.get(10_000)
    if r10 is not None:
        rl = r10["stalls"]["reload"]
        worst = max(rl["call_max"], rl["lag_max"])
        ok = rl["reload_s"] <= 1 and worst <= 50
        line(
            "10k: change visible <= 1 s, no stall > 50 ms",
            ok,
            f"{_f(rl['reload_s'])} s, worst stall {worst:.1f} ms",
        )
    else:
        line("10k: change visible <= 1 s, no stall > 50 ms", None, "10k not run")
    r50 = done.get(50_000)
    ready = r50.get("opa_ready_s") if r50 else None
    line(
        "OPA engine ready at 50k",
        None if ready is None else ready == ready,
        f"{_f(ready * 1000 if ready else None, '{:.1f}')} ms after OPA loaded",
    )
    return out


def tables(results: Results) -> str:
    return "\n".join([*decisions_table(results), "", *stall_table(results), "", *targets(results)])


def plot(results: Results, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = _done(results)
    ns = sorted(done)
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.2))
    for key, label, style in (("emb_uncached", "embedded", "-o"), ("opa_uncached", "OPA", "--s")):
        pts = [(n, done[n][key]) for n in ns if done[n].get(key)]
        for q in ("p50", "p99"):
            ax1.plot([n for n, _ in pts], [v[q] for _, v in pts], style, label=f"{label} {q}")
    ax1.set(
        xscale="log",
        yscale="log",
        xlabel="agents in data (20 rules each)",
        ylabel="uncached decision ms",
        title="Decision cost vs fleet size",
    )
    ax1.axhline(2.0, color="grey", lw=0.8, ls=":")
    ax1.legend(fontsize=8)
    ax2.plot(ns, [done[n]["rss_engine"] for n in ns], "-o", label="proxy process RSS")
    ax2.plot(ns, [done[n]["rss_cutter"] for n in ns], "-^", label="data cutter RSS")
    opa = [n for n in ns if done[n].get("opa_rss")]
    ax2.plot(opa, [done[n]["opa_rss"] for n in opa], "--s", label="OPA server RSS")
    ax2.set(xscale="log", xlabel="agents in data", ylabel="MiB", title="Memory")
    ax2.legend(fontsize=8)
    ax3.plot(ns, [done[n]["stalls"]["reload"]["reload_s"] for n in ns], "-o", label="embedded")
    ax3.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax3.set(
        xscale="log",
        xlabel="agents in data",
        ylabel="s",
        title="One agent's rule edit: visible after",
    )
    ax3.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
