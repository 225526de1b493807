"""What every benchmark script shares: its ``--out`` JSON file, the machine it ran on, and table rendering.

Each script prints its tables as before and also writes them, with the date, the machine (CPU model,
core count, JAX version and backend), the seed count, its settings and its wall time, to one JSON file
(``--out``, default ``benchmarks/results/<name>.json``). `benchmarks/report.py` renders docs/results.md
from these files only, so every number on that page comes from a run.

A table in the JSON is ``{"name", "title", "columns", "rows", "formats"}``: ``rows`` are dicts of raw
values (floats unrounded, ``None`` for an empty cell), ``formats`` maps a column to a format spec of
`format_cell` (default: ``.3f`` for floats, ``str`` otherwise). A row may carry ``"<column> sd"``
next to ``"<column>"``: the cell is then written "mean (sd)".
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
_STARTED = time.perf_counter()


def add_out_argument(parser: argparse.ArgumentParser, name: str) -> None:
    """``--out PATH``: where the script writes its JSON (default benchmarks/results/<name>.json)."""
    parser.add_argument(
        "--out",
        default=os.path.join(RESULTS, f"{name}.json"),
        help=f"JSON file of the results (default: benchmarks/results/{name}.json)",
    )


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":")[0].strip() in ("model name", "Model", "cpu model"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict:
    """CPU model, core count, JAX version and backend, device kind and count, Python and OS."""
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "jax": None,
        "backend": None,
        "devices": 0,
        "device_kind": None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import jax
    except ImportError:  # toy_torch_reference.py may run where JAX is not installed
        return info
    devices = jax.devices()
    info.update(
        jax=jax.__version__, backend=jax.default_backend(), devices=len(devices), device_kind=devices[0].device_kind
    )
    return info


def command(argv: list[str] | None = None) -> str:
    """The command line that reruns this script with the same arguments, minus ``--out``."""
    argv = list(sys.argv if argv is None else argv)
    script = os.path.relpath(os.path.abspath(argv[0]), ROOT)
    args, skip = [], False
    for a in argv[1:]:
        if skip:
            skip = False
        elif a == "--out":
            skip = True
        elif not a.startswith("--out="):
            args.append(a)
    return shlex.join(["python", script, *args])


def load_config(name: str):
    """The config ``configs/<file>.py`` of ``"file"`` or ``"file:arg"`` (its get_config(arg))."""
    import importlib

    path, _, arg = name.partition(":")
    module = importlib.import_module(f"configs.{path}")
    return module.get_config(arg) if arg else module.get_config()


def table(name: str, title: str, columns: list[str], rows: list[dict], formats: dict | None = None) -> dict:
    return {"name": name, "title": title, "columns": list(columns), "rows": rows, "formats": dict(formats or {})}


def write(
    path: str, benchmark: str, tables: list[dict], seeds: int, settings: dict, compact: bool = False, **extra
) -> str:
    """Writes the results JSON (atomically; ``compact``: on one line, for large arrays in ``extra``) and says
    where; returns the path."""
    record = {
        "benchmark": benchmark,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "seeds": seeds,
        "command": command(),
        "wall_s": time.perf_counter() - _STARTED,
        "settings": settings,
        "tables": tables,
        **extra,
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=None if compact else 1, default=_jsonable)
    os.replace(tmp, path)
    print(f"\nresults: {path}", flush=True)
    return path


def _jsonable(value):
    """NumPy / JAX scalars and arrays as Python numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")


# ------------------------------------------------------------------------------------------------
# Rendering (used by report.py)
# ------------------------------------------------------------------------------------------------


def format_seconds(seconds: float) -> str:
    """0.0123 -> '12.3 ms', 2.5 -> '2.50 s', 300 -> '5 min'."""
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def format_cell(value, fmt: str | None = None) -> str:
    """``None`` -> ''; strings as they are; ``fmt`` "seconds" (`format_seconds`), "ms" (milliseconds with
    two decimals), "percent", "int", "M" (millions), "count" (both), or a format spec; floats default to ``.3f``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if fmt == "seconds":
        return format_seconds(value)
    if fmt == "ms":
        return f"{value:.2f} ms"
    if fmt == "percent":
        return f"{value:+.2%}"
    if fmt == "int":
        return f"{int(round(value)):,}"
    if fmt == "M":
        return f"{value / 1e6:.2f}M"
    if fmt == "count":
        return f"{int(value):,} ({value / 1e6:.2f}M)"
    if fmt:
        return format(value, fmt)
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    return f"{value:.3f}"


def markdown(t: dict) -> str:
    """A results table as a Markdown table."""
    cols, fmts = t["columns"], t.get("formats", {})
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in t["rows"]:
        cells = []
        for c in cols:
            cell = format_cell(row.get(c), fmts.get(c))
            if row.get(c + " sd") is not None:
                cell += f" ({format_cell(row[c + ' sd'], fmts.get(c))})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def config_values(config, *fields: str) -> dict:
    """``{"a.b": config.a.b, ...}`` for the JSON settings; a field the config lacks is left out."""
    out = {}
    for field in fields:
        value = config
        try:
            for part in field.split("."):
                value = value[part]
        except (KeyError, AttributeError, TypeError):
            continue
        out[field] = list(value) if isinstance(value, tuple) else value
    return out
