"""Web UI at scale: the run monitor on a live 100-partition run, side by side with a 10,000-partition one.

Measures, in headless Chromium (Debian's, through Playwright) on `/runs/<id>` while the run's tasks move from
pending to running to succeeded:
  - navigation -> the graph showing the node with its counts ("k / N succeeded"): first useful paint (the
    page is opened once the run's N tasks are planned, so this is the UI's time, not the engine's);
  - frame times over a window of live updates with the node's partition table open: requestAnimationFrame
    deltas recorded in the page, p50 / p95 / max and long frames (> 50 ms); long tasks and the renderer main
    thread's busy share (CDP Performance metrics) over the same window; frame times during the interactions;
  - interaction latency, the median of `--repeat` tries each, timed in the page from the action to the frame
    that shows its result: click the node -> the partition table's first row; scroll the table to its end ->
    the last partition's row; filter by state -> that state's rows;
  - the page's JS heap after a GC, its DOM size and the table rows rendered (virtualised: a screenful, not N);
  - what the page fetched over the window: responses, 200s and 304s (the ETag polls), bytes, browser-side
    latency of the polls.

The runs are live but paced, and paced alike: the server is bench/control_plane.py's, whose executor ends
each task in a background thread (no process), here after `--task-seconds`, `--parallelism` tasks at once, so
both runs complete as many tasks per second (1/s by default) and cost the 2-core machine the same MLflow and
engine work per second; what differs is only how many partitions the UI has to show. Neither run
needs to finish: the 100-partition one lasts about 100 s, long enough for its measurements, and each is
cancelled once measured.

Usage: uv run python -m bench.ui_scale [--partitions 10000] [--window 15] [--repeat 3] [--parallelism 4]
                                       [--task-seconds 4]
Uses MLFLOW_TRACKING_URI if set, else starts a throwaway MLflow server (SQLite) for the bench.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench.control_plane import percentile, start_server

SMALL = 100
NODE = "noop"
DAG = """
name: {name}
nodes:
  - {{id: files, kind: source, uri: {data}}}
  - {{id: noop, kind: project, project: "{project}", entry_point: main, partitions: {partitions},
     parallelism: {parallelism}}}
edges:
  - {{from: files, to: noop, input: data, partitioner: file}}
"""
HERE = Path(__file__).resolve().parent
LONG_FRAME_MS = 50.0

# In the page before its own scripts: a requestAnimationFrame loop stamping every frame, long tasks, the
# moment the graph first shows the node's counts, and `until`, which resolves at the frame that shows what a
# check waits for (or null after a timeout).
PAGE_PROBE = """
(() => {
  const bench = window.__bench = { frames: [], longTasks: [], firstUseful: null };
  performance.setResourceTimingBufferSize(1000000);
  const tick = (t) => { bench.frames.push(t); requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) bench.longTasks.push([e.startTime, e.duration]);
    }).observe({ type: "longtask", buffered: true });
  } catch (e) { /* no long-task timing in this browser */ }
  bench.until = (check, timeoutMs) => new Promise((resolve) => {
    let done = false;
    const finish = (ok) => {
      if (done) return;
      done = true;
      observer.disconnect();
      clearTimeout(timer);
      if (!ok) { resolve(null); return; }
      requestAnimationFrame(() => resolve(performance.now()));
    };
    const observer = new MutationObserver(() => { if (check()) finish(true); });
    observer.observe(document, { childList: true, subtree: true, characterData: true, attributes: true });
    const timer = setTimeout(() => finish(false), timeoutMs);
    if (check()) finish(true);
  });
  bench.measure = async (act, check, timeoutMs) => {
    const started = performance.now();
    act();
    const shown = await bench.until(check, timeoutMs);
    return shown === null ? null : shown - started;
  };
  bench.node = () => document.querySelector('[data-testid="monitor-node-NODE"]');
  bench.table = () => document.querySelector('section[aria-label="Partitions of NODE"]');
  bench.scroller = () => bench.table()?.querySelector(".vbody");
  bench.rows = () => bench.table()?.querySelectorAll(".vbody [role=row]") ?? [];
  bench.row = (i) => bench.table()?.querySelector(`.vbody [role=row][aria-rowindex="${i + 2}"]`);
  bench.loaded = (el) => !!el && /\\brow-/.test(el.className) && !el.hasAttribute("data-bench-stale");
  const useful = () => (bench.node()?.querySelector(".counts")?.textContent ?? "").includes(NEEDLE);
  bench.until(useful, 600000).then((t) => { bench.firstUseful = t; });
})();
"""

# Page-side interactions: each times its action to the frame showing the result (null: timed out).
JS_CLICK = "() => __bench.measure(() => __bench.node().click(), () => __bench.loaded(__bench.row(0)), 30000)"
# Unselect the node the way the address bar would (the page keeps `?node=` in the URL): the table unmounts.
JS_UNSELECT = """() => {
  history.replaceState(history.state, "", location.pathname);
  dispatchEvent(new PopStateEvent("popstate", { state: history.state }));
  return __bench.until(() => !__bench.table(), 10000);
}"""
JS_SCROLL_END = """(last) => __bench.measure(
  () => { const s = __bench.scroller(); s.scrollTop = s.scrollHeight; },
  () => __bench.loaded(__bench.row(last)), 30000)"""
JS_SCROLL_TOP = """() => __bench.measure(() => __bench.scroller().scrollTo(0, 0),
  () => __bench.loaded(__bench.row(0)), 30000)"""
# The rows on screen are marked stale first, so that only rows rendered for the new filter count.
JS_FILTER = """(state) => __bench.measure(() => {
  for (const r of __bench.rows()) r.setAttribute("data-bench-stale", "");
  const select = __bench.table().querySelector("select");
  select.value = state;
  select.dispatchEvent(new Event("input", { bubbles: true }));
  select.dispatchEvent(new Event("change", { bubbles: true }));
}, () => {
  const r = __bench.row(0);
  if (!__bench.loaded(r)) return false;
  return state ? r.classList.contains("row-" + state) : r.querySelector("[role=cell]").textContent === "0";
}, 30000)"""
# What the first paint waited on: the document and its script, then the run's first poll.
JS_LOADED = """(detail) => [performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd,
  performance.getEntriesByType("resource").find((e) => e.name.endsWith(detail)).responseEnd]"""
JS_ROWS = "() => __bench.rows().length"
JS_DOM = "() => document.getElementsByTagName('*').length"
FILTERS = ("succeeded", "pending", "")


# -- what the page fetched, from its Resource Timing entries ------------------------------------------------
JS_FETCHED = """([from, to]) => performance.getEntriesByType("resource")
  .filter((e) => e.startTime >= from && e.startTime <= to)
  .map((e) => [e.name, e.responseStatus ?? 0, e.transferSize, e.duration])"""


def traffic(entries: list[tuple[str, int, int, float]]) -> dict[str, Any]:
    """Responses by kind (run detail and task page polls), 200s against 304s, bytes on the wire, latency."""
    polls = [e for e in entries if "/api/v1/runs/" in e[0]]
    detail = [e for e in polls if "/tasks" not in e[0]]
    tasks = [e for e in polls if "/tasks" in e[0]]

    def statuses(rows: list[tuple[str, int, int, float]]) -> str:
        return f"{sum(r[1] == 200 for r in rows)} / {sum(r[1] == 304 for r in rows)}"

    return {
        "requests": len(entries),
        "detail_200_304": statuses(detail),
        "tasks_200_304": statuses(tasks),
        "kib": sum(e[2] for e in entries) / 1024,
        "poll_ms": [e[3] for e in polls] or [0.0],
    }


def metrics(cdp: Any) -> dict[str, float]:
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def planned(api: httpx.Client, run_id: str) -> int | None:
    detail = api.get(f"/runs/{run_id}").raise_for_status().json()
    return next((s["partitions"] for s in detail["stages"] if s["node"] == NODE), None)


def succeeded(api: httpx.Client, run_id: str) -> tuple[int, str]:
    detail = api.get(f"/runs/{run_id}").raise_for_status().json()
    stage = next(s for s in detail["stages"] if s["node"] == NODE)
    return stage["counts"].get("succeeded", 0), detail["state"]


def median(values: list[float | None]) -> float | None:
    done = [v for v in values if v is not None]
    return statistics.median(done) if done else None


# -- one run, watched in a fresh browser context ------------------------------------------------------------
def measure(
    browser: Any, ui: str, api: httpx.Client, run_id: str, n: int, server_pid: int, args: Any
) -> dict[str, Any]:
    probe = PAGE_PROBE.replace("NODE", NODE).replace("NEEDLE", repr(f"/ {n} succeeded"))
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        context.add_init_script(probe)
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        result: dict[str, Any] = {"partitions": n}

        page.goto(f"{ui}/runs/{run_id}", wait_until="commit")
        page.wait_for_function("() => window.__bench && __bench.firstUseful !== null", timeout=120_000)
        result["first_useful_ms"] = page.evaluate("() => __bench.firstUseful")
        result["dcl_ms"], result["first_detail_ms"] = page.evaluate(JS_LOADED, f"/api/v1/runs/{run_id}")

        # Open the table (the first click sample), then watch the live page with it open.
        clicks = [page.evaluate(JS_CLICK)]
        page.wait_for_timeout(500)
        before, cpu_before, done_before = metrics(cdp), cpu_seconds(server_pid), succeeded(api, run_id)[0]
        window_from = page.evaluate("() => performance.now()")
        page.wait_for_timeout(args.window * 1000)
        window_to = page.evaluate("() => performance.now()")
        result["traffic"] = traffic(page.evaluate(JS_FETCHED, [window_from, window_to]))
        after, cpu_after, (done_after, state) = metrics(cdp), cpu_seconds(server_pid), succeeded(api, run_id)
        span = (window_to - window_from) / 1000
        stamps = [t for t in page.evaluate("() => __bench.frames") if window_from <= t <= window_to]
        long_tasks = [d for s, d in page.evaluate("() => __bench.longTasks") if window_from <= s <= window_to]
        result |= {
            "window_s": span,
            "frames": [b - a for a, b in itertools.pairwise(stamps)],
            "long_tasks": long_tasks,
            "busy": (after["TaskDuration"] - before["TaskDuration"]) / span,
            "script_ms": (after["ScriptDuration"] - before["ScriptDuration"]) * 1000,
            "layouts": after["LayoutCount"] - before["LayoutCount"],
            "style_recalcs": after["RecalcStyleCount"] - before["RecalcStyleCount"],
            "server_cpu": (cpu_after - cpu_before) / span,
            "succeeded_during": done_after - done_before,
            "state_after_window": state,
        }

        # Interactions, each a few times; the table's rows are counted at the top and at the end.
        rows = [page.evaluate(JS_ROWS)]
        busy_from = page.evaluate("() => performance.now()")
        for _ in range(args.repeat - 1):
            page.evaluate(JS_UNSELECT)
            page.wait_for_timeout(300)
            clicks.append(page.evaluate(JS_CLICK))
            page.wait_for_timeout(300)
        scrolls = []
        for _ in range(args.repeat):
            scrolls.append(page.evaluate(JS_SCROLL_END, n - 1))
            rows.append(page.evaluate(JS_ROWS))
            page.wait_for_timeout(300)
            page.evaluate(JS_SCROLL_TOP)
            page.wait_for_timeout(300)
        filters = []
        for _ in range(args.repeat):
            for state in FILTERS:
                filters.append(page.evaluate(JS_FILTER, state))
                rows.append(page.evaluate(JS_ROWS))
                page.wait_for_timeout(300)
        busy_to = page.evaluate("() => performance.now()")
        stamps = [t for t in page.evaluate("() => __bench.frames") if busy_from <= t <= busy_to]
        result["busy_frames"] = [b - a for a, b in itertools.pairwise(stamps)]
        cdp.send("HeapProfiler.collectGarbage")
        heap = metrics(cdp)
        result |= {
            "click_ms": clicks,
            "scroll_ms": scrolls,
            "filter_ms": filters,
            "rows": max(rows),
            "dom_nodes": page.evaluate(JS_DOM),
            "heap_mib": heap["JSHeapUsedSize"] / 2**20,
            "state_at_end": succeeded(api, run_id)[1],
        }
        return result
    finally:
        with contextlib.suppress(
            PlaywrightError
        ):  # gone already after a Ctrl-C, which reaches the browser too
            context.close()


def start_run(api: httpx.Client, root: Path, n: int, args: Any) -> tuple[str, float, float]:
    """Starts a run of n partitions and waits until its stage is planned (the graph can show "k / n").

    Returns the run's id, how long POST /runs took and how long until the n tasks were planned."""
    data = root / f"data-{n}"
    data.mkdir()
    for i in range(n):
        (data / f"f{i:07d}.txt").write_text(f"{i}\n")
    name = f"bench-ui-{n}"
    dag = DAG.format(
        name=name, data=data, project=HERE / "projects" / "noop", partitions=n, parallelism=args.parallelism
    )
    api.post("/dags", json={"yaml": dag}).raise_for_status()
    started = time.perf_counter()
    run = api.post("/runs", json={"dag": name}).raise_for_status().json()
    submit_s = time.perf_counter() - started
    while planned(api, run["id"]) != n:
        if time.perf_counter() - started > 600:
            raise SystemExit(f"the {n}-partition run was not planned in 10 minutes")
        time.sleep(0.2)
    return run["id"], submit_s, time.perf_counter() - started


def cancel(api: httpx.Client, run_id: str) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the server is going (Ctrl-C reaches it too): stopped below
        api.post(f"/runs/{run_id}/cancel")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--partitions", type=int, default=10_000, help="The big run's partitions.")
    parser.add_argument(
        "--window", type=float, default=15.0, help="Seconds of live updates to record frames over."
    )
    parser.add_argument("--repeat", type=int, default=3, help="Tries of each interaction (median reported).")
    parser.add_argument("--parallelism", type=int, default=4, help="Tasks running at once in either run.")
    parser.add_argument("--task-seconds", type=float, default=4.0, help="How long each task runs.")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C

    from concurrent_mlflow import local_mlflow

    results = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        root = Path(tmp)
        own_mlflow = not os.environ.get("MLFLOW_TRACKING_URI")
        try:
            tracking = os.environ.get("MLFLOW_TRACKING_URI") or local_mlflow.ensure_server(root / "mlflow")
            server_args = argparse.Namespace(
                partitions=max(args.partitions, SMALL), task_threads=args.parallelism
            )
            server, url = start_server(root, tracking, server_args, task_seconds=args.task_seconds)
            try:
                ui = url.removesuffix("/api/v1")
                with httpx.Client(base_url=url, timeout=120) as api, sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
                    for n in (SMALL, args.partitions):
                        run_id, submit_s, planned_s = start_run(api, root, n, args)
                        try:
                            result = measure(browser, ui, api, run_id, n, server.pid, args)
                        finally:
                            cancel(api, run_id)
                        result |= {"submit_s": submit_s, "planned_s": planned_s}
                        results.append(result)
                        print(f"  measured the {n}-partition run", file=sys.stderr)
                    browser.close()
            finally:
                server.terminate()
                server.wait(timeout=60)
        finally:
            if own_mlflow:
                local_mlflow.stop_server(root / "mlflow")
    report(args, results, load_before, os.getloadavg())


# -- the table ----------------------------------------------------------------------------------------------
def report(
    args: Any, results: list[dict[str, Any]], load_before: tuple[float, ...], load_after: tuple[float, ...]
) -> None:
    small, big = results

    def frames(r: dict[str, Any], q: int | None) -> float:
        return max(r["frames"]) if q is None else percentile(r["frames"], q)

    rows: list[tuple[str, Any, str]] = [
        ("POST /runs answered (s)", lambda r: r["submit_s"], ".2f"),
        ("submit -> stage planned (s)", lambda r: r["planned_s"], ".1f"),
        ("first useful paint (ms)", lambda r: r["first_useful_ms"], ".0f"),
        ("  DOMContentLoaded (ms)", lambda r: r["dcl_ms"], ".0f"),
        ("  first GET /runs/{id} answered (ms)", lambda r: r["first_detail_ms"], ".0f"),
        ("frames in window (per s)", lambda r: len(r["frames"]) / r["window_s"], ".1f"),
        ("frame time p50 (ms)", lambda r: frames(r, 50), ".1f"),
        ("frame time p95 (ms)", lambda r: frames(r, 95), ".1f"),
        ("frame time max (ms)", lambda r: frames(r, None), ".1f"),
        (f"long frames > {LONG_FRAME_MS:.0f} ms", lambda r: sum(f > LONG_FRAME_MS for f in r["frames"]), "d"),
        ("long tasks (count)", lambda r: len(r["long_tasks"]), "d"),
        ("long tasks (total ms)", lambda r: sum(r["long_tasks"]), ".0f"),
        ("renderer main thread busy (%)", lambda r: 100 * r["busy"], ".1f"),
        ("script time in window (ms)", lambda r: r["script_ms"], ".0f"),
        ("layouts / style recalcs", lambda r: r["layouts"] + r["style_recalcs"], ".0f"),
        ("frame time p95 in interactions (ms)", lambda r: percentile(r["busy_frames"], 95), ".1f"),
        ("frame time max in interactions (ms)", lambda r: max(r["busy_frames"]), ".1f"),
        ("long frames in interactions", lambda r: sum(f > LONG_FRAME_MS for f in r["busy_frames"]), "d"),
        ("click node -> first row (ms, median)", lambda r: median(r["click_ms"]), ".0f"),
        ("scroll to end -> last row (ms, median)", lambda r: median(r["scroll_ms"]), ".0f"),
        ("filter by state -> rows (ms, median)", lambda r: median(r["filter_ms"]), ".0f"),
        (
            "interactions timed out",
            lambda r: sum(v is None for k in ("click_ms", "scroll_ms", "filter_ms") for v in r[k]),
            "d",
        ),
        ("JS heap after GC (MiB)", lambda r: r["heap_mib"], ".1f"),
        ("DOM elements", lambda r: r["dom_nodes"], "d"),
        ("table rows rendered (max)", lambda r: r["rows"], "d"),
        ("requests in window", lambda r: r["traffic"]["requests"], "d"),
        ("  GET /runs/{id}: 200 / 304", lambda r: r["traffic"]["detail_200_304"], "s"),
        ("  GET .../tasks: 200 / 304", lambda r: r["traffic"]["tasks_200_304"], "s"),
        ("KiB received in window", lambda r: r["traffic"]["kib"], ".1f"),
        ("poll latency in browser p50 (ms)", lambda r: percentile(r["traffic"]["poll_ms"], 50), ".0f"),
        ("poll latency in browser p95 (ms)", lambda r: percentile(r["traffic"]["poll_ms"], 95), ".0f"),
        ("server CPU in window (%)", lambda r: 100 * r["server_cpu"], ".0f"),
        ("tasks succeeded in window", lambda r: r["succeeded_during"], "d"),
        (
            "run state after window / at end",
            lambda r: f"{r['state_after_window']} / {r['state_at_end']}",
            "s",
        ),
    ]
    head_small, head_big = f"{small['partitions']:,}", f"{big['partitions']:,}"
    pace = args.parallelism / args.task_seconds
    print(
        f"\nRun monitor in headless Chromium, {os.cpu_count()} cores, load average {load_before[0]:.1f} "
        f"before, {load_after[0]:.1f} after; live runs paced at {pace:.2f} tasks/s "
        f"({args.parallelism} at once, {args.task_seconds:g} s each); {args.window:g} s window, "
        f"{args.repeat} tries per interaction\n"
    )
    print(f"  {'metric':40} {head_small:>14} {head_big:>14} {'ratio':>7}")
    print(f"  {'-' * 40} {'-' * 14} {'-' * 14} {'-' * 7}")
    for label, get, spec in rows:
        a, b = get(small), get(big)
        cell_a = "-" if a is None else format(a, spec)
        cell_b = "-" if b is None else format(b, spec)
        ratio = f"{b / a:.2f}" if isinstance(a, int | float) and isinstance(b, int | float) and a else ""
        print(f"  {label:40} {cell_a:>14} {cell_b:>14} {ratio:>7}")


if __name__ == "__main__":
    main()
