"""The runner's live view of a run: sim clock, drones in the air, open incidents, responses so far.

The run recorder rewrites `progress.json` in the run directory a few times a second of wall
time; this module only reads it, so the display never slows the graph and works the same
for any run the recorder keeps (a scenario or a live shift).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table


def read_progress(run_dir: Path) -> dict | None:
    """The recorder's latest progress, or None before its first write (or while it is being replaced)."""
    try:
        return json.loads((run_dir / "progress.json").read_text())
    except (OSError, ValueError):
        return None


def _clock(seconds) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _number(value, fmt: str = "{:.0f}", unit: str = "") -> str:
    return "-" if value is None else fmt.format(value) + unit


def progress_table(progress: dict | None, title: str) -> Table:
    table = Table(title=title, show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(no_wrap=True)
    if progress is None:
        table.add_row("graph", "starting: waiting for the first sim second")
        return table
    response = progress.get("response_time_s") or {}
    duration = progress.get("duration_s")
    table.add_row("sim clock", f"{_clock(progress.get('sim_time_s'))}"
                  + (f" of at most {_clock(duration)}" if duration else "")
                  + f"   ({_number(progress.get('real_time_factor'), '{:.1f}', ' x real time')})")
    calls_total = progress.get("calls_total")
    table.add_row("calls", f"{progress.get('calls_received', 0)}" + (f" of {calls_total}" if calls_total else ""))
    table.add_row("drones in the air", f"{progress.get('airborne', 0)} of {progress.get('vehicles', 0)}")
    table.add_row("open incidents", str(progress.get("open_incidents", 0)))
    table.add_row("eligible / refused by policy",
                  f"{progress.get('incidents_eligible', 0)} / {progress.get('incidents_refused_by_policy', 0)}")
    table.add_row("attended", str(progress.get("incidents_attended", 0)))
    table.add_row("response p50 / p90 / max",
                  " / ".join(_number(response.get(k), "{:.0f}", " s") for k in ("p50", "p90", "max")))
    in_view = progress.get("target_in_view_fraction")
    table.add_row("suspect in view", _number(None if in_view is None else 100 * in_view, "{:.0f}", " %"))
    on_suspect = progress.get("target_on_suspect_fraction")
    table.add_row("target on the suspect", _number(None if on_suspect is None else 100 * on_suspect, "{:.0f}", " %"))
    flights_without = progress.get("flights_without_incident", 0)
    table.add_row("flights without incident", f"[{'red' if flights_without else 'green'}]{flights_without}[/]")
    return table


class ProgressDisplay:
    """A live table on a terminal; elsewhere (CI logs, a pipe) a plain line every `line_period_s`."""

    def __init__(self, run_dir: Path, title: str, console: Console | None = None, line_period_s: float = 15.0):
        self.run_dir = run_dir
        self.title = title
        self.console = console or Console()
        self.line_period_s = line_period_s
        self._live: Live | None = None
        self._last_line = -float("inf")

    def __enter__(self) -> ProgressDisplay:
        if self.console.is_terminal:
            self._live = Live(progress_table(None, self.title), console=self.console, refresh_per_second=4,
                              transient=False)
            self._live.__enter__()
        return self

    def update(self) -> None:
        progress = read_progress(self.run_dir)
        if self._live is not None:
            self._live.update(progress_table(progress, self.title))
            return
        now = time.monotonic()
        if progress is not None and now - self._last_line >= self.line_period_s:
            self._last_line = now
            response = progress.get("response_time_s") or {}
            self.console.print(
                f"[progress] sim {_clock(progress.get('sim_time_s'))}, calls {progress.get('calls_received', 0)}, "
                f"in the air {progress.get('airborne', 0)}, open incidents {progress.get('open_incidents', 0)}, "
                f"attended {progress.get('incidents_attended', 0)}, response p50 "
                f"{_number(response.get('p50'), '{:.0f}', ' s')}", highlight=False, markup=False, soft_wrap=True)

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(progress_table(read_progress(self.run_dir), self.title))
            self._live.__exit__(*exc)
            self._live = None
