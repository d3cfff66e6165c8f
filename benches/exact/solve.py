#!/usr/bin/env python3
"""Issue 13's quality bench, solver side: each exported instance solved exactly with CP-SAT,
berth's own timeline checked against the same model, and berth ÷ optimum reported.

Usage: solve.py DIR [--time-limit SECONDS] [--json OUT]   (benches/exact/run.sh runs it)

The exact model (what berth's timeline models, see docs/scheduling.md):
- every step runs once for its duration alone (a fixed time, or MiB ÷ the rate it gets alone,
  plus a fixed tail); within-move order and berth's cross-move capacity edges are precedences;
  the order across moves is free (berth's budget chains are *not* imposed: budgets are
  constraints of their own);
- `parallelism` steps at once; `max_outbound_per_host` / `max_inbound_per_host` MIGRATE_GUEST
  steps (any mode, tail included) out of / into a host at once;
- links: berth splits a link evenly (`min(cap, link ÷ transfers out, link ÷ transfers in)`), so
  k transfers on one link all keep their full rate r exactly when k·r ≤ link. The model lets
  transfers overlap on a link only that far (a cumulative of floor(link ÷ r) per link and
  direction, over the transfer part of the step) and never runs a transfer slowed down. Every
  solution therefore runs unchanged under berth's sharing rule (checked below by replaying it);
  it leaves out schedules that slow transfers down by sharing, which only pay off in corner
  cases (the even split wastes the faster transfer's share), so "optimum" is the optimum of
  schedules without slowed transfers;
- budgets: per member move an interval from the start of STOP_GUEST (live: MIGRATE_GUEST) to
  the end of STARTUP_GUEST (live: MIGRATE_GUEST), at most `max_unavailable` open at once;
- memory and vCPU on every host at every instant ≤ max(capacity, usage now), a guest held on
  its target from its claim step's start and on its source until its release step's end. The
  capacity edges imply it; it is checked on every timeline rather than posted to the solver.
Times are integers in milliseconds (durations rounded up), so the optimum is at most a few
milliseconds above the exact one.

berth's timeline is checked against the model: precedences (its own edges and the budget
chains), the limits at every instant, the budgets, capacity, and every duration replayed
under the sharing rule from berth's start times. Any violation is printed and counted.
"""

import argparse
import bisect
import glob
import json
import math
import os
import statistics
import sys

from ortools.sat.python import cp_model

SCALE = 1000  # ticks per second
EPS = 1e-6


def ticks_up(seconds):
    return int(math.ceil(seconds * SCALE - 1e-7))


def link_capacity(inst, host, rates):
    """How many transfers at their full rate a host's link carries at once (per direction)."""
    bw = next(h["link_mib_s"] for h in inst["hosts"] if h["name"] == host)
    if not rates:
        return 1
    # Equal split: k transfers keep rate r while r <= bw / k, for every one of them.
    return max(1, int(math.floor(bw / max(rates) + 1e-9)))


def limit(m, intervals, capacity):
    """At most `capacity` of `intervals` at once (no-overlap for one: stronger propagation)."""
    if len(intervals) <= capacity:
        return
    if capacity == 1:
        m.AddNoOverlap(intervals)
    else:
        m.AddCumulative(intervals, [1] * len(intervals), capacity)


def hint_ticks(inst):
    """berth's start times in ticks, each pushed 3 ticks later per step that ended before it
    started. Durations rounded up to ticks would otherwise make a step overlap one that ended
    just before it; with the push every "a ends before b starts" of berth's timeline holds in
    ticks, so no limit sees more steps at once than berth's timeline had and, when berth slowed
    no transfer down, the hint is a solution of the model."""
    steps = inst["steps"]
    ends = sorted(st["berth_start_s"] + st["berth_duration_s"] for st in steps)
    ticks = []
    for st in steps:
        before = bisect.bisect_right(ends, st["berth_start_s"] + EPS)
        ticks.append(int(round(st["berth_start_s"] * SCALE)) + 3 * before)
    return ticks


def solve(inst, time_limit):
    steps = inst["steps"]
    moves = inst["moves"]
    conc = inst["concurrency"]
    m = cp_model.CpModel()
    dur, xfer = [], []
    for st in steps:
        if st["transfer"] is not None:
            t = st["transfer"]
            x = ticks_up(t["mib"] / t["rate_mib_s"])
            xfer.append(x)
            dur.append(x + ticks_up(t["tail_s"]))
        else:
            xfer.append(0)
            dur.append(max(1, ticks_up(st["fixed_s"])))
    horizon = sum(dur) + 1
    start = [m.NewIntVar(0, horizon, f"s{i}") for i in range(len(steps))]
    end = [m.NewIntVar(0, horizon, f"e{i}") for i in range(len(steps))]
    iv = [m.NewIntervalVar(start[i], dur[i], end[i], f"i{i}") for i in range(len(steps))]
    for i, st in enumerate(steps):
        for d in st["deps"]:
            m.Add(start[i] >= end[d])
    limit(m, iv, conc["parallelism"])
    out_by, in_by, link_out, link_in = {}, {}, {}, {}
    for i, st in enumerate(steps):
        if not st["migration"]:
            continue
        mv = moves[st["move"]]
        out_by.setdefault(mv["from"], []).append(iv[i])
        in_by.setdefault(mv["to"], []).append(iv[i])
        if st["transfer"] is not None:
            xiv = m.NewFixedSizeIntervalVar(start[i], xfer[i], f"x{i}")
            rate = st["transfer"]["rate_mib_s"]
            link_out.setdefault(mv["from"], []).append((xiv, rate))
            link_in.setdefault(mv["to"], []).append((xiv, rate))
    for group, cap in ((out_by, conc["max_outbound_per_host"]), (in_by, conc["max_inbound_per_host"])):
        for ivs in group.values():
            limit(m, ivs, cap)
    for group in (link_out, link_in):
        for host, items in group.items():
            cap = link_capacity(inst, host, [r for _, r in items])
            limit(m, [x for x, _ in items], cap)
    for b in inst["budgets"]:
        ivs = []
        for a, z in b["intervals"]:
            size = m.NewIntVar(0, horizon, "")
            m.Add(size == end[z] - start[a])
            ivs.append(m.NewIntervalVar(start[a], size, end[z], ""))
        limit(m, ivs, b["capacity"])
    makespan = m.NewIntVar(0, horizon, "makespan")
    m.AddMaxEquality(makespan, end)
    m.Minimize(makespan)
    for i, tick in enumerate(hint_ticks(inst)):
        m.AddHint(start[i], tick)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 1
    # berth's timeline is the hint; its start times rounded to ticks can be off by one here
    # and there, and a slowed transfer is not in the model: let the solver repair it.
    solver.parameters.repair_hint = True
    status = solver.Solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return {"status": solver.StatusName(status)}
    starts = [solver.Value(s) / SCALE for s in start]
    return {
        "status": solver.StatusName(status),
        "optimum_s": solver.ObjectiveValue() / SCALE,
        "bound_s": solver.BestObjectiveBound() / SCALE,
        "starts": starts,
        "ends": [solver.Value(e) / SCALE for e in end],
        "wall_s": solver.WallTime(),
    }


def replay(inst, starts):
    """Finish times of every step started at `starts`, transfers sharing links evenly."""
    steps, moves = inst["steps"], inst["moves"]
    bw = {h["name"]: h["link_mib_s"] for h in inst["hosts"]}
    finish = [None] * len(steps)
    remaining = {}
    for i, st in enumerate(steps):
        if st["transfer"] is None:
            finish[i] = starts[i] + st["fixed_s"]
    pending = sorted((starts[i], i) for i, st in enumerate(steps) if st["transfer"] is not None)
    active = []
    now = 0.0
    k = 0
    while k < len(pending) or active:
        while k < len(pending) and pending[k][0] <= now + EPS:
            i = pending[k][1]
            active.append(i)
            remaining[i] = steps[i]["transfer"]["mib"]
            k += 1
        if not active:
            now = pending[k][0]
            continue
        outs, ins = {}, {}
        for i in active:
            mv = moves[steps[i]["move"]]
            outs[mv["from"]] = outs.get(mv["from"], 0) + 1
            ins[mv["to"]] = ins.get(mv["to"], 0) + 1
        rate = {}
        for i in active:
            mv = moves[steps[i]["move"]]
            cap = steps[i]["transfer"]["cap_mib_s"] or math.inf
            rate[i] = min(cap, bw[mv["from"]] / outs[mv["from"]], bw[mv["to"]] / ins[mv["to"]])
        nxt = min(now + remaining[i] / rate[i] for i in active)
        if k < len(pending):
            nxt = min(nxt, pending[k][0])
        for i in active:
            remaining[i] -= rate[i] * (nxt - now)
        now = nxt
        for i in [i for i in active if remaining[i] <= 1e-6]:
            active.remove(i)
            finish[i] = now + steps[i]["transfer"]["tail_s"]
    return finish


def slowed(inst):
    """Whether berth's timeline slows a transfer down by sharing a link (outside the model)."""
    return any(st["berth_duration_s"] > st["alone_s"] + 1e-3 for st in inst["steps"])


def sweep_max(intervals):
    """Most intervals (start, end) open at once; one ending when another starts is not open."""
    events = sorted([(e, 0) for s, e in intervals] + [(s, 1) for s, e in intervals])
    most = cur = 0
    for _, kind in events:
        cur += 1 if kind else -1
        most = max(most, cur)
    return most


def check(inst, starts, ends, edges_key):
    """Violations of the exact model by a timeline (starts, ends per step)."""
    steps, moves, conc = inst["steps"], inst["moves"], inst["concurrency"]
    bad = []
    tol = 1e-3
    for i, st in enumerate(steps):
        for d in st[edges_key]:
            if starts[i] < ends[d] - tol:
                bad.append(f"{st['id']} starts at {starts[i]:.3f} before {steps[d]['id']} ends at {ends[d]:.3f}")
    shrink = lambda s, e: (s + tol, e - tol)
    if sweep_max([shrink(starts[i], ends[i]) for i in range(len(steps))]) > conc["parallelism"]:
        bad.append("more steps at once than parallelism")
    for side, cap in (("from", conc["max_outbound_per_host"]), ("to", conc["max_inbound_per_host"])):
        by = {}
        for i, st in enumerate(steps):
            if st["migration"]:
                by.setdefault(moves[st["move"]][side], []).append(shrink(starts[i], ends[i]))
        for host, ivs in by.items():
            if sweep_max(ivs) > cap:
                bad.append(f"more migrations {side} {host} at once than {cap}")
    for b in inst["budgets"]:
        ivs = [shrink(starts[a], ends[z]) for a, z in b["intervals"]]
        if sweep_max(ivs) > b["capacity"]:
            bad.append(f"budget {b['name']} exceeded")
    # Memory and vCPU at every instant: releases at a step's end, claims at its start.
    for h in inst["hosts"]:
        events = []
        for mv in moves:
            if mv["memory_mib"] == 0 and mv["vcpus"] == 0:
                continue
            if mv["to"] == h["name"] and mv["claim_step"] is not None:
                events.append((starts[mv["claim_step"]] + tol, 1, mv))
            if mv["from"] == h["name"] and mv["release_step"] is not None:
                events.append((ends[mv["release_step"]] - tol, -1, mv))
        mem, cpu = h["used_memory_mib"], h["used_vcpus"]
        mem_cap, cpu_cap = max(h["memory_mib"], mem), max(h["vcpus"], cpu)
        for _, sign, mv in sorted(events, key=lambda e: (e[0], e[1])):
            mem += sign * mv["memory_mib"]
            cpu += sign * mv["vcpus"]
            if mem > mem_cap or cpu > cpu_cap:
                bad.append(f"{h['name']} over capacity ({mem} MiB, {cpu} vCPUs)")
                break
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--time-limit", type=float, default=20.0)
    ap.add_argument("--json")
    ap.add_argument(
        "--compare",
        help="another export of the same instances (e.g. after a scheduler change): its berth "
        "timelines are checked and compared with the same optimum",
    )
    args = ap.parse_args()
    rows = []
    for path in sorted(glob.glob(os.path.join(args.dir, "instance-*.json"))):
        inst = json.load(open(path))
        steps = inst["steps"]
        b_start = [st["berth_start_s"] for st in steps]
        b_end = [st["berth_start_s"] + st["berth_duration_s"] for st in steps]
        problems = check(inst, b_start, b_end, "berth_deps")
        replayed = replay(inst, b_start)
        for i, st in enumerate(steps):
            if abs(replayed[i] - b_end[i]) > 1e-3:
                problems.append(f"{st['id']}: berth ends at {b_end[i]:.3f}, the sharing rule at {replayed[i]:.3f}")
        res = solve(inst, args.time_limit)
        if "optimum_s" not in res:
            print(f"{os.path.basename(path)}: solver {res['status']}", file=sys.stderr)
            continue
        # The solver's own schedule must satisfy the same checks, its transfers replayed.
        opt_problems = check(inst, res["starts"], res["ends"], "deps")
        for i, f in enumerate(replay(inst, res["starts"])):
            if f > res["ends"][i] + 1e-3:
                opt_problems.append(f"optimum {steps[i]['id']} ends later when replayed")
        berth = inst["berth"]["makespan_s"]
        other = None
        if args.compare:
            alt = json.load(open(os.path.join(args.compare, os.path.basename(path))))
            assert [st["id"] for st in alt["steps"]] == [st["id"] for st in steps], path
            a_start = [st["berth_start_s"] for st in alt["steps"]]
            a_end = [st["berth_start_s"] + st["berth_duration_s"] for st in alt["steps"]]
            alt_problems = check(alt, a_start, a_end, "berth_deps")
            for i, f in enumerate(replay(alt, a_start)):
                if abs(f - a_end[i]) > 1e-3:
                    alt_problems.append(f"{steps[i]['id']}: ends at {a_end[i]:.3f}, the sharing rule at {f:.3f}")
            other = {
                "slowed": slowed(alt),
                "berth_s": alt["berth"]["makespan_s"],
                "ratio": alt["berth"]["makespan_s"] / res["optimum_s"],
                "priority_seed": alt["berth"]["priority_seed"],
                "violations": alt_problems,
            }
        row = {
            "instance": os.path.basename(path),
            "kind": inst["kind"],
            "modes": inst["modes"],
            "hosts": len(inst["hosts"]),
            "moves": len(inst["moves"]),
            "steps": len(steps),
            "budget": bool(inst["budgets"]),
            "berth_s": berth,
            "optimum_s": res["optimum_s"],
            "bound_s": res["bound_s"],
            "proven": res["status"] == "OPTIMAL",
            "ratio": berth / res["optimum_s"],
            "ratio_vs_bound": berth / res["bound_s"],
            "berth_lower_bound_s": inst["berth"]["lower_bound_s"],
            "priority_seed": inst["berth"]["priority_seed"],
            "berth_violations": problems,
            "slowed": slowed(inst),
            "optimum_violations": opt_problems,
            "solve_s": res["wall_s"],
            "compare": other,
        }
        rows.append(row)
        flag = "" if row["proven"] else f" (bound {res['bound_s']:.1f})"
        print(
            f"{row['instance']:<20} {row['kind']:<9} {row['modes']:<7} h={row['hosts']:>2} "
            f"moves={row['moves']:>2} steps={row['steps']:>3} budget={'y' if row['budget'] else 'n'} "
            f"berth={berth:8.1f} opt={res['optimum_s']:8.1f}{flag} ratio={row['ratio']:.4f} "
            f"lb={row['berth_lower_bound_s']:8.1f} violations={len(problems)}/{len(opt_problems)}"
        )
        if other:
            print(
                f"    compared: berth={other['berth_s']:8.1f} ratio={other['ratio']:.4f} "
                f"seed={other['priority_seed']} violations={len(other['violations'])}"
            )
            for p in other["violations"][:5]:
                print(f"    compared berth: {p}")
        for p in problems[:5]:
            print(f"    berth: {p}")
        for p in opt_problems[:5]:
            print(f"    optimum: {p}")
    if not rows:
        sys.exit("no instance solved")
    # Unproven instances: the best schedule known in the model, the solver's or a berth
    # timeline that satisfies it (no violation, no slowed transfer), whichever is shorter.
    for r in rows:
        best = r["optimum_s"]
        for t in [r] + ([r["compare"]] if r.get("compare") else []):
            feasible = not t.get("slowed") and not t.get("berth_violations", t.get("violations"))
            if feasible and not r["proven"]:
                best = min(best, t["berth_s"])
        r["best_known_s"] = best
        r["ratio"] = r["berth_s"] / best
        if r.get("compare"):
            r["compare"]["ratio"] = r["compare"]["berth_s"] / best
    ratios = [r["ratio"] for r in rows]
    at_opt = sum(1 for r in ratios if r <= 1.0001)
    summary = {
        "instances": len(rows),
        "proven_optimal": sum(r["proven"] for r in rows),
        "worst_ratio": max(ratios),
        "median_ratio": statistics.median(ratios),
        "at_optimum": at_opt,
        "at_proven_optimum": sum(1 for r in rows if r["proven"] and r["ratio"] <= 1.0001),
        "worst_ratio_vs_solver_bound": max(r["berth_s"] / r["bound_s"] for r in rows),
        "above_5_percent": sum(1 for r in ratios if r > 1.05),
        "berth_infeasible": sum(1 for r in rows if r["berth_violations"]),
        "optimum_infeasible": sum(1 for r in rows if r["optimum_violations"]),
        "berth_lower_bound_loosest": max(r["optimum_s"] / r["berth_lower_bound_s"] for r in rows if r["berth_lower_bound_s"] > 0),
    }
    if args.compare:
        cmp = [r["compare"] for r in rows]
        c_ratios = [c["ratio"] for c in cmp]
        summary["compare"] = {
            "worst_ratio": max(c_ratios),
            "median_ratio": statistics.median(c_ratios),
            "at_optimum": sum(1 for r in c_ratios if r <= 1.0001),
            "at_proven_optimum": sum(
                1 for r, c in zip(rows, cmp) if r["proven"] and c["ratio"] <= 1.0001
            ),
            "worst_ratio_vs_solver_bound": max(c["berth_s"] / r["bound_s"] for r, c in zip(rows, cmp)),
            "above_5_percent": sum(1 for r in c_ratios if r > 1.05),
            "berth_infeasible": sum(1 for c in cmp if c["violations"]),
            "better_than_first": sum(1 for r, c in zip(rows, cmp) if c["berth_s"] < r["berth_s"] - 1e-6),
            "worse_than_first": sum(1 for r, c in zip(rows, cmp) if c["berth_s"] > r["berth_s"] + 1e-6),
        }
    print(json.dumps(summary, indent=2))
    if args.json:
        json.dump({"summary": summary, "rows": rows}, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
