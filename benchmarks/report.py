"""Runs the benchmarks and writes docs/results.md and its plots from their JSON results.

    python benchmarks/report.py                 # every table (long: the digits and rectify runs train models)
    python benchmarks/report.py --quick         # the quick subset: a few minutes on a laptop CPU
    python benchmarks/report.py --from-json     # no runs: rebuild the page from the JSON files already there
    python benchmarks/report.py --only toy_moons,couplings   # rerun these, take the rest from their JSON

Each run is one benchmark script with fixed arguments (`RUNS`), writing its JSON (benchmarks/common.py)
to benchmarks/results/<run>.json (with --quick: benchmarks/results/quick/<run>.json; its training runs go
to runs/report/, where a rerun resumes them, or to runs/report_quick/, emptied first: --quick always
trains from scratch). The page shows every table that has a JSON file, with the date,
machine and seed count recorded by the script and the command that regenerates it, and the plots
(docs/*.png). Nothing on the page is typed by hand: numbers come from the JSON files only.
benchmarks/toy_torch_reference.py needs torch and POT: it runs only where both import, and its table
appears only if its JSON exists.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

ROOT = common.ROOT
DOCS = os.path.join(ROOT, "docs")  # the page and its plots (main sets it to the folder of --out)

# run name -> (script, full arguments, quick arguments or None (not in --quick), modules it needs);
# "{runs}" is runs/report (full) or runs/report_quick (--quick), where training runs go
RUNS = {
    "toy_moons": ("toy.py", "--task moons",
                  "--task moons --steps 500 --timed 250 "
                  "--methods icfm,otcfm,sinkhorn,loom4,dansm256,dansm1024,immiscible256"),
    "toy_checkerboard": ("toy.py", "--task checkerboard",
                         "--task checkerboard --steps 500 --timed 250 --methods icfm,otcfm,loom4,dansm256"),
    "toy_steps_per_call_8": ("toy.py", "--methods otcfm,icfm --steps_per_call 8", None),
    "toy_steps_per_call_40": ("toy.py", "--methods otcfm,icfm --steps_per_call 40", None),
    "toy_torch_reference": ("toy_torch_reference.py", "", None, ("torch", "ot")),
    "toy_end_to_end": ("toy.py", "--end_to_end", None),
    "toy_end_to_end_short": ("toy.py", "--end_to_end --sweep short", None),
    "toy_torch_reference_end_to_end": ("toy_torch_reference.py", "--end_to_end", None, ("torch", "ot")),
    "couplings": ("couplings.py", "--max-hungarian-n 1024",
                  "--sizes 256 --dims 2,3072 --match-sizes 0,10,100,1000,1797"),
    "assignment": ("assignment.py", "", "--problems 10 --repeats 3"),
    "assignment_n1024": ("assignment.py", "--n 1024 --problems 10", None),
    "digits": ("digits.py", "--workdir {runs}/digits", None),
    "edm": ("edm.py", "--workdir {runs}/edm", "--workdir {runs}/edm --steps 300 --toy_steps 500"),
    "lmm": ("lmm.py", "--workdir {runs}/lmm --digits_steps 400",
            "--workdir {runs}/lmm --tasks bound,toy --toy_steps 1000"),
    "curvature": ("curvature.py", "--workdir {runs}/curvature --toy_steps 20000 --tasks toy,digits,distill "
                  "--digits_baselines {runs}/digits",
                  "--workdir {runs}/curvature --toy_steps 1000 --betas 10,independent"),
    "rectify": ("rectify.py", "--workdir {runs}/rectify",
                "--tables 1,2 --seeds 2 --n 1000 --steps 300 --num_pairs 2000 --pair_solver euler --pair_nfe 16 "
                "--workdir {runs}/rectify"),
    "rectify_init_teacher": ("rectify.py", "--tables 2 --init_from_teacher --workdir {runs}/rectify", None),
    "unet_params": ("unet_params.py", "", ""),
    "throughput": ("throughput.py", "--steps 20", "--configs edm_cifar10:uncond,loom_cifar10 --steps 20"),
}  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------------


def run_args(name: str, quick: bool) -> list[str] | None:
    """The script and its arguments in this mode, or None where the run is not part of it."""
    script, full, quick_args = RUNS[name][:3]
    args = quick_args if quick else full
    if args is None:
        return None
    runs = os.path.join("runs", "report_quick" if quick else "report")
    return [os.path.join("benchmarks", script)] + args.replace("{runs}", runs).split()


def needs(name: str) -> tuple[str, ...]:
    return RUNS[name][3] if len(RUNS[name]) > 3 else ()


def available(name: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in needs(name))


def run(name: str, quick: bool, results: str) -> tuple[int, float]:
    """Runs one benchmark script (output to the console and to results/logs/<name>.log); (exit code, seconds).

    The full report resumes the training runs it finds under runs/report/; --quick trains from scratch
    every time (it empties its own folders under runs/report_quick/ first)."""
    out = os.path.join(results, f"{name}.json")
    if os.path.exists(out):  # a failed run leaves no stale table on the page, and the last results are kept
        os.replace(out, out + ".previous")
    if quick:
        for arg in RUNS[name][2].split():
            if arg.startswith("{runs}/"):
                shutil.rmtree(
                    os.path.join(ROOT, arg.replace("{runs}", os.path.join("runs", "report_quick"))), ignore_errors=True
                )
    cmd = [sys.executable] + run_args(name, quick) + ["--out", out]
    os.makedirs(os.path.join(results, "logs"), exist_ok=True)
    print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
    started = time.perf_counter()
    with open(os.path.join(results, "logs", f"{name}.log"), "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            log.write(line)
            if "Warning" not in line:
                sys.stdout.write(line)
        code = proc.wait()
    seconds = time.perf_counter() - started
    print(f"=== {name}: exit {code} after {seconds:.0f} s", flush=True)
    return code, seconds


def load(results: str) -> dict:
    data = {}
    for name in RUNS:
        path = os.path.join(results, f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                data[name] = json.load(f)
    return data


# ------------------------------------------------------------------------------------------------
# Page pieces
# ------------------------------------------------------------------------------------------------


def provenance(record: dict, name: str, quick: bool) -> str:
    """The machine / date / seeds line and the commands that regenerate a table."""
    m = record["machine"]
    date = record["date"].replace("T", " ").replace("+00:00", " UTC")
    seeds = record["seeds"]
    seeds_text = f"{seeds} seed{'s' if seeds != 1 else ''}" if seeds else "deterministic (no seeds)"
    report = "python benchmarks/report.py" + (" --quick" if quick else "") + f" --only {name}"
    return (
        f"*{date}; {m['cpu']}, {m['cores']} cores; JAX {m['jax']}, backend {m['backend']} "
        f"({m['devices']} {m['device_kind']} device{'s' if m['devices'] != 1 else ''}); {seeds_text}; "
        f"script wall time {common.format_seconds(record['wall_s'])}.*  \n"
        f"Command: `{record['command']}` (regenerate this section and the page: `{report}`)"
    )


def titled_tables(record: dict) -> list[str]:
    """Each table of a record as its bold title and its Markdown table."""
    return [part for t in record["tables"] for part in (f"**{t['title']}.**\n", common.markdown(t) + "\n")]


def tables_of(record: dict, prefix: str = "") -> list[dict]:
    return [t for t in record["tables"] if t["name"].startswith(prefix)]


def settings_text(s: dict, *fields: tuple[str, str]) -> str:
    """'label value, ...' of the settings present (value lists joined with x)."""
    parts = []
    for key, label in fields:
        if key in s:
            v = s[key]
            v = "x".join(map(str, v)) if isinstance(v, list) else f"{v:,}" if isinstance(v, int) else str(v)
            parts.append(label.format(v))
    return ", ".join(parts)


def best_per_column(t: dict, columns: list[str], label: str, skip: tuple[str, ...] = ()) -> str:
    """'NFE 1: <row> (<value>); ...': the lowest value of each column, among rows not starting with ``skip``."""
    rows = [r for r in t["rows"] if not str(r[label]).startswith(skip)]
    parts = []
    for c in columns:
        scored = [r for r in rows if isinstance(r.get(c), (int, float))]
        if scored:
            r = min(scored, key=lambda r: r[c])
            parts.append(f"{c}: {r[label]} ({common.format_cell(r[c], t['formats'].get(c))})")
    return "; ".join(parts)


# ------------------------------------------------------------------------------------------------
# Plots
# ------------------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _axes_style(ax, xs: list[int]) -> None:
    """Log axes with plain tick labels at the x values."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xticks(xs, [str(x) for x in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    if ax.get_yscale() == "log":  # plain labels: the decades and their 2, 3, 5 multiples
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "235" else ""))
    ax.grid(alpha=0.3, which="both")


def _save(fig, name: str) -> str:
    os.makedirs(DOCS, exist_ok=True)
    fig.savefig(os.path.join(DOCS, name), dpi=110, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return name


def _nfe_columns(t: dict, prefix: str) -> list[tuple[int, str]]:
    return [(int(c.split()[-1]), c) for c in t["columns"] if c.startswith(prefix) and c.split()[-1].isdigit()]


def plot_toy_nfe(data: dict) -> str | None:
    """W2 against Euler NFE for every coupling of each toy run present."""
    panels = [(n, data[n]) for n in ("toy_moons", "toy_checkerboard") if n in data]
    if not panels:
        return None
    plt = _plt()
    labels = list(dict.fromkeys(r["coupling"] for _, record in panels for r in record["tables"][0]["rows"]))
    colors = {label: plt.get_cmap("tab10")(i % 10) for i, label in enumerate(labels)}  # one colour per coupling
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    handles = {}
    for ax, (name, record) in zip(axes[0], panels):
        t = record["tables"][0]
        cols = _nfe_columns(t, "W2 NFE")
        for r in t["rows"]:
            (handles[r["coupling"]],) = ax.plot(
                [n for n, _ in cols],
                [r[c] for _, c in cols],
                marker="o",
                ms=3,
                color=colors[r["coupling"]],
                label=r["coupling"],
            )
        ax.set(xscale="log", yscale="log", xlabel="NFE (Euler)", ylabel="W2 to held-out points", title=t["title"])
        _axes_style(ax, [n for n, _ in cols])
    axes[0][-1].legend([handles[k] for k in labels], labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    return _save(fig, "toy_w2_nfe.png")


def plot_trajectories(data: dict) -> str | None:
    """Euler trajectories of two couplings on the first toy run with trajectories: I-CFM and the best few-step one."""
    record = next(
        (data[n] for n in ("toy_moons", "toy_checkerboard") if n in data and data[n].get("trajectories")), None
    )
    if record is None:
        return None
    trajs = record["trajectories"]
    names = list(trajs)
    first = "I-CFM" if "I-CFM" in trajs else names[0]
    t = record["tables"][0]
    col = _nfe_columns(t, "W2 NFE")[0][1]
    others = [r for r in t["rows"] if r["coupling"] in trajs and r["coupling"] != first]
    if not others:
        return None
    second = min(others, key=lambda r: r[col])["coupling"]  # the lowest W2 at the smallest NFE
    import numpy as np

    target = np.asarray(record["target_sample"])
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), sharex=True, sharey=True)
    for ax, name in zip(axes, (first, second)):
        path = np.asarray(trajs[name])
        ax.scatter(target[:, 0], target[:, 1], s=1, c="tab:orange", alpha=0.3, label="held-out data")
        ax.plot(path[:, :, 0], path[:, :, 1], c="grey", lw=0.5, alpha=0.7)
        ax.scatter(path[0, :, 0], path[0, :, 1], s=4, c="black", label="noise x0")
        ax.scatter(path[-1, :, 0], path[-1, :, 1], s=4, c="tab:blue", label="x1")
        ax.set(aspect="equal", title=f"{name}: {len(path) - 1} Euler steps")
    axes[0].legend(loc="upper left", fontsize=7, markerscale=3)
    fig.suptitle(t["title"])
    return _save(fig, "toy_trajectories.png")


def plot_digits_nfe(record: dict) -> str:
    """FD-digits and W2 against Euler NFE for every coupling; the reference row as a dashed line."""
    t = record["tables"][0]
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4))
    for ax, prefix, ylabel in ((axes[0], "FD NFE", "FD-digits"), (axes[1], "W2 NFE", "W2 (pixel space)")):
        cols = _nfe_columns(t, prefix)
        for r in t["rows"]:
            ys = [r.get(c) for _, c in cols]
            if r["coupling"].startswith("reference"):
                ax.axhline(ys[0], ls="--", c="black", lw=1, label=r["coupling"])
            else:
                ax.plot([n for n, _ in cols], ys, marker="o", ms=3, label=r["coupling"])
        ax.set(xscale="log", yscale="log" if prefix.startswith("FD") else "linear", xlabel="NFE (Euler)", ylabel=ylabel)
        _axes_style(ax, [n for n, _ in cols])
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    return _save(fig, "digits_fd_nfe.png")


def plot_rectify(data: dict) -> str | None:
    """W2 against Euler steps T: the closed-form 1-RF drift per K, the learned checkerboards, and k-rectification."""
    panels = []
    rect = data.get("rectify", {})
    for t in rect.get("tables", []):
        if t["name"] in ("theory_mixtures", "checkerboard_w2", "digits_w2"):
            panels.append(("T", t))
    for name in ("rectify", "rectify_init_teacher"):
        for t in tables_of(data.get(name, {"tables": []}), "krectify"):
            panels.append(("NFE", t))
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (kind, t) in zip(axes[0], panels):
        label = t["columns"][0]
        if kind == "T":
            cols = [(int(c.split("=")[1]), c) for c in t["columns"] if c.startswith("W2 T=")]
        else:
            cols = _nfe_columns(t, "W2 NFE")
        for r in t["rows"]:
            if str(r[label]).startswith("floor"):
                ax.axhline(r[cols[0][1]], ls="--", c="black", lw=1, label=r[label])
                continue
            (line,) = ax.plot(
                [n for n, _ in cols],
                [r[c] for _, c in cols],
                marker="o",
                ms=3,
                label=f"{label} = {r[label]}" if kind == "T" else r[label],
            )
            if r.get("floor") is not None:
                ax.axhline(r["floor"], ls=":", c=line.get_color(), lw=1)
        short = {
            "theory_mixtures": "exact 1-RF drift, mixtures of K Gaussians",
            "checkerboard_w2": "learned 1-RF, checkerboards",
            "digits_w2": "learned 1-RF, digit classes",
        }
        title = short.get(
            t["name"], "k-rectification, " + ("students from teachers" if "init" in t["name"] else "from scratch")
        )
        ax.set(xscale="log", yscale="log", xlabel=f"{'T' if kind == 'T' else 'NFE'} (Euler)", ylabel="W2", title=title)
        _axes_style(ax, [n for n, _ in cols])
        ax.legend(fontsize=7, loc="best")
    return _save(fig, "rectify_w2.png")


# ------------------------------------------------------------------------------------------------
# Sections
# ------------------------------------------------------------------------------------------------


def section_toy(data: dict, quick: bool, out: list[str]) -> None:
    if not any(n in data for n in ("toy_moons", "toy_checkerboard")):
        return
    out.append("## Couplings on the 2-D toys\n")
    out.append(
        "`benchmarks/toy.py`: each row is a toy config of `configs/` that differs from the others only in "
        "the coupling; the same fixed training set, model, optimiser and step keys for all. Steps/s are "
        "measured over the last timed steps (input stream and pool matching included, compilation "
        "excluded); W2 is exact, from the EMA parameters with Euler at each NFE, from the same evaluation "
        "noises for every coupling, to held-out points. One seed per row: small differences are within "
        "seed noise.\n"
    )
    for name in ("toy_moons", "toy_checkerboard"):
        if name not in data:
            continue
        record = data[name]
        s, t = record["settings"], record["tables"][0]
        out.append(f"### {t['title']}\n")
        out.append(provenance(record, name, quick) + "\n")
        out.append(
            "Settings: "
            + settings_text(
                s,
                ("data.source", "source {}"),
                ("data.name", "target {}"),
                ("model.hidden", "MLP {}"),
                ("training.batch_size", "batch {}"),
                ("data.num_train", "{} training points"),
                ("optim.learning_rate", "Adam {}"),
                ("loss.sigma", "sigma {}"),
                ("training.ema_decay", "EMA {}"),
                ("steps", "{} steps"),
                ("steps_per_call", "{} per call"),
                ("timed_steps", "last {} timed"),
                ("eval.num_samples", "W2 on {} held-out points"),
            )
            + ".\n"
        )
        out.append(common.markdown(t) + "\n")
        nfe = [c for _, c in _nfe_columns(t, "W2 NFE")]
        out.append("Lowest W2 — " + best_per_column(t, nfe, "coupling") + ".\n")
    png = plot_toy_nfe(data)
    if png:
        out.append(f"![W2 against NFE for every coupling on the toys]({png})\n")
    png = plot_trajectories(data)
    if png:
        out.append(
            "Euler trajectories from the same evaluation noises: I-CFM beside the coupling with the lowest "
            "W2 at the smallest NFE.\n"
        )
        out.append(f"![Euler trajectories of two couplings]({png})\n")


def section_steps_per_call(data: dict, quick: bool, out: list[str]) -> None:
    runs = [n for n in ("toy_moons", "toy_steps_per_call_8", "toy_steps_per_call_40") if n in data]
    spc = [n for n in runs if n != "toy_moons"]
    if not spc:
        return
    out.append("## Steps per compiled call\n")
    out.append(
        "`training.steps_per_call=K` runs K steps per compiled call; a stateless coupling's K pairings "
        "are computed together, in a worker thread while the previous call's updates run (same steps and "
        "W2 as at one step per call). Steps/s of exact OT-CFM and I-CFM on 8 Gaussians -> moons:\n"
    )
    rows = []
    for n in runs:
        record = data[n]
        by = {r["coupling"]: r["steps/s"] for r in record["tables"][0]["rows"]}
        if not any(k.startswith(("OT-CFM (exact", "I-CFM")) for k in by):
            continue
        rows.append(
            {
                "--steps_per_call": record["settings"]["steps_per_call"],
                "OT-CFM (exact) steps/s": by.get("OT-CFM (exact, per batch)"),
                "I-CFM steps/s": by.get("I-CFM"),
                "run": n,
            }
        )
    t = common.table(
        "steps_per_call",
        "",
        ["--steps_per_call", "OT-CFM (exact) steps/s", "I-CFM steps/s", "run"],
        rows,
        {"OT-CFM (exact) steps/s": ".0f", "I-CFM steps/s": ".0f"},
    )
    out.append(common.markdown(t) + "\n")
    for n in spc:
        out.append(f"`{n}`: " + provenance(data[n], n, quick) + "\n")
    if "toy_torch_reference" in data:
        record = data["toy_torch_reference"]
        out.append("### PyTorch + POT reference\n")
        out.append(
            "`benchmarks/toy_torch_reference.py` (needs `pip install torch pot`; not a flowjax dependency): "
            "a plain eager PyTorch loop of the same OT-CFM / I-CFM setup with POT's exact solver, fresh "
            "samples every step.\n"
        )
        out.append(provenance(record, "toy_torch_reference", quick) + "\n")
        out.append(common.markdown(record["tables"][0]) + "\n")


def section_end_to_end(data: dict, quick: bool, out: list[str]) -> None:
    names = [n for n in ("toy_end_to_end", "toy_end_to_end_short") if n in data]
    if not names:
        return
    out.append("## The whole command: start-up, steps/s and end to end\n")
    out.append(
        "`benchmarks/toy.py --end_to_end` times `main.py --config=configs/quickstart.py` as a user runs it, in a "
        "subprocess: with an empty compilation cache, rerun in a new workdir with JAX's persistent cache filled, "
        "and resumed in the same workdir. Start-up is from the command to the first steps taken; steps/s "
        "leaves out the compile; end to end includes the evaluation sweep. The PyTorch row "
        "(`benchmarks/toy_torch_reference.py --end_to_end`, run where torch and POT are installed) trains the "
        "same OT-CFM and evaluates W2 at Euler NFE 1 only; `--sweep short` limits flowjax's evaluation to that "
        "point too (its trajectory metrics and plots still run), the default sweep is what a user gets.\n"
    )
    for name in names:
        record = data[name]
        out.append(f"**{record['settings'].get('sweep', 'default')} sweep.** " + provenance(record, name, quick) + "\n")
        for t in record["tables"]:
            out.append(common.markdown(t) + "\n")


def section_couplings(data: dict, quick: bool, out: list[str]) -> None:
    if "couplings" not in data:
        return
    record = data["couplings"]
    out.append("## Pairing cost of each coupling, and DANSM Table 2 on the digits\n")
    out.append(provenance(record, "couplings", quick) + "\n")
    timing = tables_of(record, "pairing_time")
    if timing:
        out.append(
            "Wall time per call after compilation (median of the repeats, cost matrix included) of pairing "
            'n data (N(0, I) + 1) with n noises (N(0, I)) in dimension d. "loom step" is one LOOM-CFM step '
            "on a minibatch of n: noise regenerated from seeds, the exact assignment, the seeds written "
            "back.\n"
        )
        out.append(common.markdown(timing[0]) + "\n")
    t = tables_of(record, "dansm_table2")[0]
    s = record["settings"]
    out.append(
        f"The analogue of DANSM Table 2: the {s.get('num_digits', 0):,} digits in [-1, 1] in a fixed shuffled "
        "order, paired with N(0, I) noise by DANSM's streaming greedy matching with match size ms "
        "(consecutive groups of ms points, each against its own pool of ms fresh noises), by the exact "
        "assignment over all of them, or at random. d_min is over these paths only (the paper's CIFAR-10 "
        "row uses its whole training set), and t* is in flowjax's direction (t = 1 at the data; the "
        "paper's t* is one minus it).\n"
    )
    out.append(common.markdown(t) + "\n")


def section_assignment(data: dict, quick: bool, out: list[str]) -> None:
    names = [n for n in ("assignment", "assignment_n1024") if n in data]
    if not names:
        return
    out.append("## Host assignment with `assignment.column_order`\n")
    out.append(
        "`benchmarks/assignment.py`: time per problem of the host solver (`scipy` "
        "`linear_sum_assignment` after row and column reduction) on the cost matrices the couplings build, "
        "on one core, with the columns as built and in `assignment.column_order`; both give assignments "
        "of equal cost (checked). A ratio below one means the ordering helps.\n"
    )
    for n in names:
        record = data[n]
        out.append(f"### n = {record['settings']['n']:,}\n")
        out.append(provenance(record, n, quick) + "\n")
        out.append(common.markdown(record["tables"][0]) + "\n")


def section_digits(data: dict, quick: bool, out: list[str]) -> None:
    if "digits" not in data:
        return
    record = data["digits"]
    s, t = record["settings"], record["tables"][0]
    out.append("## Digits on the CPU: FD-digits and W2 against NFE\n")
    out.append(
        "`benchmarks/digits.py` trains `configs/{icfm,otcfm,loom,dansm}_digits.py` (scikit-learn's 8x8 "
        "digits, a small ADM-layout UNet; the configs differ only in the coupling) and evaluates the EMA "
        "parameters on the same noises: FD-digits and exact pixel-space W2 against the held-out test "
        "images, Euler unless stated; S and the curvature paper's curvature along an Euler path. The "
        "reference row puts as many real training images in place of samples: the floor of both metrics "
        "with this many samples. These are CPU-scale analogues, not paper settings.\n"
    )
    out.append(provenance(record, "digits", quick) + "\n")
    out.append(
        "Settings: "
        + settings_text(
            s,
            ("training.num_steps", "{} steps"),
            ("training.batch_size", "batch {}"),
            ("eval.num_samples", "{} test images"),
            ("eval.path_nfe", "S and curvature from {} Euler steps"),
        )
        + ".\n"
    )
    out.append(common.markdown(t) + "\n")
    fd = [c for _, c in _nfe_columns(t, "FD NFE")]
    out.append("Lowest FD-digits — " + best_per_column(t, fd, "coupling", skip=("reference",)) + ".\n")
    out.append(f"![FD-digits and W2 against NFE]({plot_digits_nfe(record)})\n")


def section_edm(data: dict, quick: bool, out: list[str]) -> None:
    if "edm" not in data:
        return
    record = data["edm"]
    out.append("## EDM teachers beside flow models\n")
    out.append(
        "`benchmarks/edm.py` trains EDM models (Karras et al. 2022: preconditioned denoiser, log-normal noise "
        "levels, `loss.name=edm`) and flow models of the same network and budget, and samples every model with "
        "EDM's Heun on the Karras schedule (`edm_heun`, NFE 2N - 1), Euler on the same grid (`edm_euler`) and "
        "Euler on flowjax's uniform grid in t (`euler`; an EDM model is read on t = 1 / (1 + sigma)). The digits "
        "EDM model is conditional on the digit class (class-balanced samples; the class-accuracy row is the "
        "fraction of samples the digits classifier puts in the asked class); the flow models are "
        "unconditional. EDM's Heun is meant for N of about 18 and more: with few steps each step crosses a "
        "large part of the sigma range and the corrector evaluates the denoiser at an extrapolated state, so "
        "compare its small-N columns with Euler at the same NFE.\n"
    )
    out.append(provenance(record, "edm", quick) + "\n")
    out.extend(titled_tables(record))


def lmm_claims(rows: dict, steps: dict) -> list[str]:
    """Sentences on the paper's claims that the LMM digits rows (by model name) allow, from their numbers."""
    f = lambda v: common.format_cell(v, ".2f")
    teacher, l2 = rows.get("EDM teacher (conditional)"), rows.get("LMM, L2 (mean squared error)")
    lpips, adv = rows.get("LMM, LPIPS-VGG (16x16)"), rows.get("LMM, LPIPS, then + adversarial")
    out = []
    if teacher and l2 and None not in (teacher.get("teacher (Heun 35)"), l2.get("lmm:0"), l2.get("lmm:0,1")):
        t, one, two = teacher["teacher (Heun 35)"], l2["lmm:0"], l2["lmm:0,1"]
        out.append(
            f"LMM at NFE 1-2 near or better than its teacher: the L2 student scores {f(one)} (NFE 1) and {f(two)} "
            f"(NFE 2) against the teacher's {f(t)} at Heun NFE 35, {min(one, two) / t:.2f} times the teacher's at "
            f"best{' (better)' if min(one, two) < t else ''}, with the teacher's own Euler at NFE 1 and 2 at "
            f"{f(teacher.get('Euler NFE 1'))} and {f(teacher.get('Euler NFE 2'))}."
        )
    if l2 and lpips and None not in (l2.get("lmm:0"), lpips.get("lmm:0")):
        better = lpips["lmm:0"] < l2["lmm:0"]
        why = (
            ""
            if better
            else " (an untested guess why not: LPIPS-VGG sees the 8x8 digits upsampled to 16x16, far "
            "from the natural images its weights were fitted to)"
        )
        out.append(
            f"Perceptual better than L2: at NFE 1 the LPIPS student scores {f(lpips['lmm:0'])} against L2's "
            f"{f(l2['lmm:0'])}, {'reproduced' if better else 'not reproduced'} here{why}; steps: L2 {steps.get('l2')}, "
            f"LPIPS {steps.get('lpips')}."
        )
    if lpips and adv and None not in (lpips.get("lmm:0"), adv.get("lmm:0")):
        better = [
            n for n, k in ((1, "lmm:0"), (2, "lmm:0,1")) if None not in (adv.get(k), lpips.get(k)) and adv[k] < lpips[k]
        ]
        if len(better) == 2:
            verdict = "reproduced at both."
        elif better:
            verdict = f"reproduced at NFE {better[0]} only."
        else:
            verdict = "not reproduced."
        out.append(
            f"The adversarial stage better than lines only: {steps.get('lpips_adv')} adversarial steps after the "
            f"LPIPS student's {steps.get('lpips')} take its FD-digits from {f(lpips['lmm:0'])} to {f(adv['lmm:0'])} "
            f"at NFE 1 and from {f(lpips.get('lmm:0,1'))} to {f(adv.get('lmm:0,1'))} at NFE 2: " + verdict
        )
    rf2, lines = rows.get("2-RF on its pairs"), rows.get("LMM, L2, on its pairs (from scratch)")
    icfm = rows.get("I-CFM teacher (1-RF)") or {}
    if rf2 and lines and None not in (rf2.get("Euler NFE 1"), lines.get("lmm:0")):
        out.append(
            f"A second teacher (I-CFM, its midpoint pairs; {f(icfm.get('teacher (midpoint 32)'))} at midpoint NFE 32): "
            f"LMM on its lines scores {f(lines['lmm:0'])} at NFE 1 and "
            f"{f(lines.get('lmm:0,1'))} at NFE 2 against 2-RF's {f(rf2['Euler NFE 1'])} and "
            f"{f(rf2.get('Euler NFE 2'))} on the same pairs (2-RF fine-tunes the teacher for {steps.get('icfm_rf2')} "
            f"steps, LMM trains from scratch for {steps.get('icfm_lmm')})."
        )
    return out


def section_lmm(data: dict, quick: bool, out: list[str]) -> None:
    if "lmm" not in data:
        return
    record = data["lmm"]
    out.append("## Lines Matching Models\n")
    out.append(
        '`benchmarks/lmm.py` reproduces "Generative Lines Matching Models" at CPU scale: its App. A.2 bound on the '
        "similarity of batch-OT pairs, its Table 1 toy (N(0, I_128) to two Gaussians: straightness in both "
        "readings of its formula, and the samples' W2 to the target), and the teacher -> Heun pairs -> LMM pipeline "
        "on the digits (L2; LPIPS-VGG and LPIPS then the adversarial stage where they were run, `--variants`; and, "
        "unless `--one_teacher`, a second teacher: I-CFM's midpoint pairs, with 2-RF and LMM trained on them). "
        "The paper column of the toy table is its Table 1 as printed (its straightness formula and normalisation "
        "are ambiguous, so compare rankings, not values).\n"
    )
    out.append(provenance(record, "lmm", quick) + "\n")
    out.extend(titled_tables(record))
    rows = {r["model"]: r for t in record["tables"] if t["name"] == "lmm_digits" for r in t["rows"]}
    steps = {k: v.get("training.num_steps") for k, v in record["settings"].get("digits", {}).items()}
    claims = lmm_claims(rows, steps)
    if claims:
        out.append("The paper's digits claims, read from the table: " + " ".join(claims) + "\n")
    digits = tables_of(data["digits"]) if "digits" in data else []
    loom = [r for t in digits for r in t["rows"] if str(r.get("coupling", "")).startswith("LOOM")]
    if loom and any(t["name"] == "lmm_digits" for t in record["tables"]):
        r = loom[0]
        out.append(
            f"Beside them, {r['coupling']} on the digits (the digits section's run, same FD-digits and test images, "
            f"unconditional): FD-digits {common.format_cell(r.get('FD NFE 1'), '.2f')} at Euler NFE 1 and "
            f"{common.format_cell(r.get('FD NFE 2'), '.2f')} at NFE 2.\n"
        )


def curvature_claims(record: dict) -> list[str]:
    """Sentences on the curvature paper's claims from the toy and digits tables (encoder rows in order of beta,
    the independent coupling as beta = infinity) and the distillation table."""
    f = lambda v: common.format_cell(v, ".3g")
    out = []
    for name, what, few, many in (
        ("curvature_toy", "toy", "W2 Euler 1", "W2 Euler 128"),
        ("curvature_digits", "digits", "FD Euler 1", "FD Heun 9"),
    ):
        table = next((t for t in record["tables"] if t["name"] == name), None)
        if table is None:
            continue
        beta = lambda r: float(r["coupling"].split("= ")[1]) if "beta" in r["coupling"] else math.inf
        rows = sorted(
            (r for r in table["rows"] if "beta" in r["coupling"] or r["coupling"].startswith("independent")), key=beta
        )
        if len(rows) < 3:
            continue
        labels = ", ".join("inf" if beta(r) == math.inf else f"{beta(r):g}" for r in rows)
        curv = [r["curvature"] for r in rows]
        falls = all(a <= b for a, b in zip(curv, curv[1:]))
        best_few = min(rows, key=lambda r: r[few])
        best_many = min(rows, key=lambda r: r[many])
        out.append(
            f"On the {what}, beta = {labels}: curvature {', '.join(f(c) for c in curv)}, "
            f"{'falling as beta falls, at every step' if falls else 'not monotone in beta'}; {few} best at "
            f"{best_few['coupling']} ({f(best_few[few])}, independent {f(rows[-1][few])}); {many} best at "
            f"{best_many['coupling']} ({f(best_many[many])}), "
            + (
                f"the smallest beta's {f(rows[0][many])}: consistent with too small a beta costing quality."
                if best_many is not rows[0]
                else "the smallest beta tried is not yet too small here."
            )
        )
    distill = next((t for t in record["tables"] if t["name"] == "curvature_distill"), None)
    if distill:
        rows = {r["teacher"]: r for r in distill["rows"]}
        ind = next((r for k, r in rows.items() if k.startswith("independent")), None)
        enc = rows.get("encoder, beta = 10")
        if ind and enc:
            lower = enc["distillation error"] < ind["distillation error"]
            better = enc["student FD NFE 1"] < ind["student FD NFE 1"]
            out.append(
                f"Distillation: the beta = 10 teacher's error {f(enc['distillation error'])} against the independent "
                f"teacher's {f(ind['distillation error'])} ({'lower' if lower else 'not lower'}), its one-step "
                f"student's FD {f(enc['student FD NFE 1'])} against {f(ind['student FD NFE 1'])} "
                f"({'better' if better else 'not better'})."
            )
    return out


def section_curvature(data: dict, quick: bool, out: list[str]) -> None:
    if "curvature" not in data:
        return
    record = data["curvature"]
    out.append("## Minimizing trajectory curvature: the encoder coupling\n")
    out.append(
        '`benchmarks/curvature.py` reproduces "Minimizing Trajectory Curvature of ODE-based Generative Models" at '
        "CPU scale: its 2-D toy (the released code's two Gaussians from the wide prior) with the learned encoder "
        "coupling at several beta and with the independent coupling, and the digits (the analogue of its image "
        "figures) beside the independent coupling, OT-CFM and LOOM-CFM trained with the same digits settings (the "
        "digits section's runs). The paper gives these results as figures only (Figs. 1, 2, 4, 5, 7: trajectories, "
        "printed I(q) bounds, curves), so there is no paper column; its claims are that curvature and the I(q) "
        "bound fall as beta falls, few-step sampling improves, and too small a beta costs sample quality through "
        "the prior mismatch. The last table is the analogue of its Table 1, whose claim is that the straighter "
        "teacher (beta = 10, sampled with half the NFE) has the lower distillation error and the better one-step "
        "student. The plots of "
        "the toy's forward lines and reverse paths are written to the run's workdir (`toy_trajectories.png`).\n"
    )
    out.append(provenance(record, "curvature", quick) + "\n")
    out.extend(titled_tables(record))
    claims = curvature_claims(record)
    if claims:
        out.append("The paper's claims, read from these tables: " + " ".join(claims) + "\n")


def section_rectify(data: dict, quick: bool, out: list[str]) -> None:
    names = [n for n in ("rectify", "rectify_init_teacher") if n in data]
    if not names:
        return
    out.append("## Rectified flow: straightness and k-rectification\n")
    kinds = {t["name"].split("_")[0] for n in names for t in data[n]["tables"]}
    text = [
        "`benchmarks/rectify.py` (its docstring has the details of each table). S is Liu et al.'s "
        "straightness, AS and PWS the theory paper's (Def. 3.3)."
    ]
    if "theory" in kinds:
        text.append(
            "The closed-form table uses the exact 1-RF drift to the Gaussian mixtures of the theory paper's "
            "Sec. 5.1 (no training; floor = W2 between two target samples; exact = the drift integrated "
            "accurately)."
        )
    if "krectify" in kinds:
        text.append(
            "The k-rectification tables train 1-, 2- and 3-rectified flows and LOOM-CFM + reflow on "
            "8 Gaussians -> moons through `train.train` and `--mode=pairs`; the floor row is W2 between two "
            "samples of the target."
        )
    if kinds & {"checkerboard", "digits"}:
        text.append(
            "The learned-flow tables fit the 1-RF of the paper's Example 2 (checkerboards of unit squares) "
            "and of its MNIST experiment (here digit-class subsets); e_T is the RMS distance between the "
            "T-step Euler sample and the dopri5 endpoint of the same noise, the discretisation error that "
            "Theorem 3.5 bounds, free of the sampling floor."
        )
    out.append(" ".join(text) + "\n")
    for n in names:
        record = data[n]
        out.append(provenance(record, n, quick) + "\n")
        secs = record.get("table_seconds", {})
        for t in record["tables"]:
            out.append(f"**{t['title']}.**" + (f" Seeds: {t['seeds']}." if "seeds" in t else "") + "\n")
            out.append(common.markdown(t) + "\n")
        if secs:
            out.append(
                "Wall time by table: "
                + ", ".join(f"table {k}: {common.format_seconds(v)}" for k, v in secs.items())
                + ".\n"
            )
    png = plot_rectify(data)
    if png:
        out.append("W2 against the number of Euler steps; dotted lines: each row's floor.\n")
        out.append(f"![W2 against Euler steps]({png})\n")


def section_unet(data: dict, quick: bool, out: list[str]) -> None:
    if "unet_params" not in data:
        return
    record = data["unet_params"]
    out.append("## UNet presets: parameter counts\n")
    out.append(
        "`benchmarks/unet_params.py`: parameters of each `model.preset` at its data set's resolution "
        "(`jax.eval_shape`, no training) beside the count its paper states, where it states one.\n"
    )
    out.append(provenance(record, "unet_params", quick) + "\n")
    for t in record["tables"]:  # the papers' presets; EDM's networks beside the released ones
        out.append(common.markdown(t) + "\n")


def section_throughput(data: dict, quick: bool, out: list[str]) -> None:
    if "throughput" not in data:
        return
    record = data["throughput"]
    out.append("## Train-step throughput\n")
    out.append(
        "`benchmarks/throughput.py`: the real train step (input pipeline, coupling, loss, update; LMM's two stages "
        "each) of the paper configs on the devices of the machine, with XLA's FLOP count of the step. On a CPU the "
        "configs are shrunk (a one-level 8-channel UNet on 8 px, 16 px for LMM, 2 examples per device: their "
        "couplings and losses at toy size), so these rows say what the pipeline costs here, not what the papers' "
        "networks cost; on a GPU or TPU host the same command runs them at full size (`--size full`, the default "
        "there). Data: TFDS's mock images and random pairs (`--data mock`).\n"
    )
    out.append(provenance(record, "throughput", quick) + "\n")
    out.extend(titled_tables(record))


SECTIONS = [
    section_toy,
    section_steps_per_call,
    section_end_to_end,
    section_couplings,
    section_assignment,
    section_digits,
    section_edm,
    section_lmm,
    section_curvature,
    section_rectify,
    section_unet,
    section_throughput,
]


def page(data: dict, quick: bool, failed: dict) -> str:
    out = [
        "# Results\n",
        "<!-- Generated by benchmarks/report.py from benchmarks/results/"
        + ("quick/" if quick else "")
        + "*.json; do not edit by hand. -->\n",
    ]
    cmd = "python benchmarks/report.py" + (" --quick" if quick else "")
    out.append(
        f"Every table and plot on this page was written by `{cmd}` from the JSON files of the benchmark "
        "scripts in `benchmarks/`; each section names the machine, date and seed count the script recorded "
        "and the command that regenerates it. No number here was typed by hand.\n"
    )
    if quick:
        lines = []
        for name in RUNS:
            args = run_args(name, True)
            if args is not None:
                lines.append(f"- `{name}`: `python {' '.join(args)}`")
        left_out = ", ".join(f"`{n}`" for n in RUNS if run_args(n, True) is None)
        out.append(
            "**This is the quick subset** (`python benchmarks/report.py --quick`): fewer training steps, "
            "couplings, problem sizes and seeds than the full tables, so its numbers are not those of the "
            "full settings. It runs:\n\n" + "\n".join(lines) + f"\n\nLeft out: {left_out}. The full page: "
            "`python benchmarks/report.py` (it trains models: long on a CPU).\n"
        )
    missing = [n for n in RUNS if n not in data and run_args(n, quick) is not None]
    for section in SECTIONS:
        section(data, quick, out)
    if missing or failed:
        out.append("## Not on this page\n")
        for n in missing:
            why = (
                f"the run failed (exit code {failed[n]}; log in benchmarks/results/"
                f"{'quick/' if quick else ''}logs/{n}.log)"
                if n in failed
                else f"needs {', '.join(needs(n))}"
                if not available(n)
                else "not run yet"
            )
            args = run_args(n, quick)
            out.append(f"- `{n}` (`python {' '.join(args)}`): {why}.")
        out.append("")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick subset (a few minutes on a laptop CPU)")
    parser.add_argument("--from-json", action="store_true", help="run nothing: render the page from existing JSON")
    parser.add_argument(
        "--only", default="", help=f"comma-separated runs to (re)run, the rest read from JSON: {list(RUNS)}"
    )
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "results.md"), help="the page to write")
    parser.add_argument(
        "--results",
        default=None,
        help="folder of the JSON files (default benchmarks/results, or benchmarks/results/quick)",
    )
    args = parser.parse_args()
    global DOCS
    DOCS = os.path.dirname(os.path.abspath(args.out))
    results = args.results or (os.path.join(common.RESULTS, "quick") if args.quick else common.RESULTS)
    names = [n for n in RUNS if run_args(n, args.quick) is not None]
    if args.only:
        unknown = set(args.only.split(",")) - set(names)
        if unknown:
            parser.error(f"unknown or not in this mode: {sorted(unknown)}")
        names = [n for n in names if n in args.only.split(",")]
    elif args.from_json:
        names = []
    started, failed, timings = time.perf_counter(), {}, {}
    for name in names:
        if not available(name):
            print(f"\n=== {name}: skipped (needs {', '.join(needs(name))})")
            continue
        code, timings[name] = run(name, args.quick, results)
        if code:
            failed[name] = code
    data = load(results)
    text = page(data, args.quick, failed)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    total = time.perf_counter() - started
    print(
        f"\nwrote {os.path.relpath(args.out, ROOT)} ({len(data)} runs; "
        + ", ".join(f"{n} {s:.0f} s" for n, s in timings.items())
        + f"; total {total:.0f} s, "
        f"{datetime.datetime.now().isoformat(timespec='seconds')})"
    )
    if failed:
        print(f"failed: {failed}")
        sys.exit(1)


if __name__ == "__main__":
    main()
