//! The step graph in Graphviz DOT (`berth graph | dot -Tsvg`): one cluster per move, nodes
//! coloured by step kind, solid edges within a move and dashed edges between moves (the
//! capacity and ordering constraints that make one move wait for another); a hold (the
//! scheduler keeping a slot free for a step, `timing.holds`) is dotted and labelled `hold`.
//!
//! Node ids are generated (`s0`, `s1`, …); names from es.xml and HCL appear only inside quoted,
//! escaped labels, so no name can alter the graph.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::plan::Plan;
use crate::render::format::{clean, count};
use crate::schedule::{Step, StepKind};

/// The plan's step graph as a DOT digraph.
pub fn plan_dot(plan: &Plan) -> String {
    let node_of: HashMap<&str, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut by_move: BTreeMap<usize, Vec<(usize, &Step)>> = BTreeMap::new();
    for (i, step) in plan.steps.iter().enumerate() {
        by_move.entry(step.move_index).or_default().push((i, step));
    }

    let mut out = String::from("digraph \"berth plan\" {\n");
    let title = format!(
        "berth plan: {}, {} in {}",
        count(plan.guest_moves().count(), "move", "moves"),
        count(plan.steps.len(), "step", "steps"),
        count(plan.waves.len(), "wave", "waves")
    );
    let _ = writeln!(
        out,
        "  graph [rankdir=LR, labelloc=t, fontname=\"Helvetica\", label={}];",
        quote(&title)
    );
    out.push_str("  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n");
    out.push_str("  edge [color=\"#495057\"];\n");

    // A rolling maintenance's phases enclose their moves' clusters.
    let phase_of_move: BTreeMap<usize, usize> = plan
        .steps
        .iter()
        .filter_map(|s| plan.phase_of(&s.id).map(|p| (s.move_index, p)))
        .collect();
    let mut open_phase: Option<usize> = None;
    for (move_index, steps) in &by_move {
        let phase = phase_of_move.get(move_index).copied();
        if phase != open_phase {
            if open_phase.is_some() {
                out.push_str("  }\n");
            }
            if let Some(p) = phase.and_then(|n| plan.phases.iter().find(|p| p.number == n)) {
                let _ = writeln!(out, "  subgraph \"cluster_phase_{}\" {{", p.number);
                let _ = writeln!(
                    out,
                    "    label={};",
                    quote(&super::format::phase_heading(p))
                );
                out.push_str("    style=\"rounded,dashed\";\n    color=\"#7048e8\";\n");
            }
            open_phase = phase;
        }
        let nodes: String = steps.iter().map(|(i, step)| node_line(*i, step)).collect();
        match plan.moves.get(*move_index) {
            Some(mv) => {
                let mut label = if mv.kind == crate::diff::MoveKind::HostService {
                    format!("{}: host command, wait until back", mv.to)
                } else if mv.kind.is_migrate() {
                    format!("{}: {} → {} ({})", mv.guest, mv.from, mv.to, mv.mode)
                } else {
                    format!("{}: {} on {}", mv.guest, mv.kind.as_str(), mv.to)
                };
                if let Some(m) = plan.maintenance.iter().find(|m| m.guest == mv.guest) {
                    label = format!("{label}\n{}", super::format::maintenance_line(m));
                }
                if mv.pivot {
                    label.push_str(", pivot");
                }
                let _ = writeln!(out, "  subgraph \"cluster_move_{move_index}\" {{");
                let _ = writeln!(out, "    label={};", quote(&label));
                out.push_str("    style=rounded;\n    color=\"#adb5bd\";\n");
                for line in nodes.lines() {
                    let _ = writeln!(out, "  {line}");
                }
                out.push_str("  }\n");
            }
            // A step naming no move of the plan: shown, outside any cluster.
            None => out.push_str(&nodes),
        }
    }
    if open_phase.is_some() {
        out.push_str("  }\n");
    }

    let holds = plan.timing.as_ref().map_or(&[][..], |t| &t.holds[..]);
    for (to, step) in plan.steps.iter().enumerate() {
        for dependency in &step.depends_on {
            let Some(&from) = node_of.get(dependency.as_str()) else {
                continue;
            };
            if holds
                .iter()
                .any(|h| h.step == step.id && &h.waits_for == dependency)
            {
                let _ = writeln!(
                    out,
                    "  s{from} -> s{to} [style=dotted, color=\"#7048e8\", label=\"hold\"];"
                );
            } else if plan.steps[from].move_index == step.move_index {
                let _ = writeln!(out, "  s{from} -> s{to};");
            } else {
                let _ = writeln!(out, "  s{from} -> s{to} [style=dashed, color=\"#e8590c\"];");
            }
        }
    }
    out.push_str("}\n");
    out
}

fn node_line(index: usize, step: &Step) -> String {
    let subject = if step.guest.is_empty() {
        &step.to
    } else {
        &step.guest
    };
    let label = format!("{subject}\n{}", step.kind);
    let tooltip = if step.detail.is_empty() {
        step.id.clone()
    } else {
        format!("{}: {}", step.id, step.detail)
    };
    format!(
        "  s{index} [label={}, tooltip={}, fillcolor=\"{}\"];\n",
        quote(&label),
        quote(&tooltip),
        kind_color(step.kind)
    )
}

/// Fill colour per kind: stopping red, network yellow, detaching orange, attaching blue,
/// migrating green, starting teal.
fn kind_color(kind: StepKind) -> &'static str {
    match kind {
        StepKind::StopGuest => "#ffc9c9",
        StepKind::CreateBridges => "#fff3bf",
        StepKind::DetachInterfaces | StepKind::DetachVolumes => "#ffe8cc",
        StepKind::AttachVolumes | StepKind::AttachInterfaces => "#d0ebff",
        StepKind::MigrateGuest => "#b2f2bb",
        StepKind::StartupGuest => "#c3fae8",
        StepKind::HostCommand | StepKind::WaitHost => "#e5dbff",
    }
}

/// A DOT quoted string whose text shows exactly as given: quotes and backslashes escaped (so
/// `\N` or `\G` in a name is not a Graphviz escape), newlines as `\n`, other control
/// characters made visible.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for line_or_sep in text.split_inclusive('\n') {
        let (line, newline) = match line_or_sep.strip_suffix('\n') {
            Some(line) => (line, true),
            None => (line_or_sep, false),
        };
        for c in clean(line).chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                _ => out.push(c),
            }
        }
        if newline {
            out.push_str("\\n");
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::sample::{sample_no_change_plan, sample_pivot_plan, sample_plan};
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn node_lines(dot: &str) -> Vec<&str> {
        dot.lines()
            .filter(|l| l.trim_start().starts_with('s') && l.contains(" [label="))
            .collect()
    }

    /// Lines `sN -> sM…` (a ` -> ` inside a quoted label does not count).
    fn edge_lines(dot: &str) -> Vec<&str> {
        let is_node = |id: &str| {
            id.strip_prefix('s')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        dot.lines()
            .filter(|l| {
                let mut words = l.split_whitespace();
                matches!((words.next(), words.next(), words.next()), (Some(a), Some("->"), Some(b))
                    if is_node(a) && is_node(b.trim_end_matches(';')))
            })
            .collect()
    }

    /// Renders `dot` with Graphviz when it is installed; `None` (test skipped) when it is not.
    fn graphviz_svg(dot: &str) -> Option<String> {
        let mut child = match Command::new("dot")
            .arg("-Tsvg")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("graphviz `dot` not installed: skipping the rendering check");
                return None;
            }
            Err(e) => panic!("cannot run dot: {e}"),
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dot.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "dot rejected the graph: {}\n{dot}",
            String::from_utf8_lossy(&output.stderr)
        );
        Some(String::from_utf8(output.stdout).unwrap())
    }

    #[test]
    fn one_node_per_step_one_cluster_per_move_one_edge_per_dependency() {
        let plan = sample_plan();
        let dot = plan_dot(&plan);
        assert_eq!(node_lines(&dot).len(), plan.steps.len());
        assert_eq!(
            dot.matches("subgraph \"cluster_move_").count(),
            plan.moves.len()
        );
        let dependencies: usize = plan.steps.iter().map(|s| s.depends_on.len()).sum();
        assert_eq!(edge_lines(&dot).len(), dependencies);
        let dashed: Vec<&str> = edge_lines(&dot)
            .into_iter()
            .filter(|l| l.contains("style=dashed"))
            .collect();
        assert_eq!(dashed.len(), 1, "one capacity edge between moves");
        // exa01vm01:MIGRATE_GUEST (s1) -> exa01vm03:MIGRATE_GUEST (s14).
        let index = |id: &str| plan.steps.iter().position(|s| s.id == id).unwrap();
        let expected = format!(
            "s{} -> s{}",
            index("exa01vm01:MIGRATE_GUEST"),
            index("exa01vm03:MIGRATE_GUEST")
        );
        assert!(
            dashed[0].trim_start().starts_with(&expected),
            "{}",
            dashed[0]
        );
        assert!(dot.contains("label=\"exa01vm02\\nDETACH_VOLUMES\""));
        assert!(dot.contains("label=\"exa01vm01: exa01adm01 → exa01adm02 (live)\";"));
        assert!(dot.ends_with("}\n"));
        if let Some(svg) = graphviz_svg(&dot) {
            assert!(svg.contains("<svg") && svg.contains("DETACH_VOLUMES"));
        }
    }

    #[test]
    fn pivot_hops_are_clusters_of_their_own_linked_by_dashed_edges() {
        let plan = sample_pivot_plan();
        let dot = plan_dot(&plan);
        assert_eq!(node_lines(&dot).len(), 6);
        assert_eq!(dot.matches("subgraph \"cluster_move_").count(), 3);
        assert_eq!(edge_lines(&dot).len(), 5);
        assert_eq!(
            edge_lines(&dot)
                .iter()
                .filter(|l| l.contains("style=dashed"))
                .count(),
            2
        );
        assert_eq!(dot.matches(", pivot\";").count(), 2);
        graphviz_svg(&dot);
    }

    #[test]
    fn empty_plan_is_an_empty_graph() {
        let dot = plan_dot(&sample_no_change_plan());
        assert!(node_lines(&dot).is_empty() && edge_lines(&dot).is_empty());
        graphviz_svg(&dot);
    }

    #[test]
    fn hostile_names_stay_inside_their_labels() {
        let mut plan = sample_plan();
        let evil = "vm\"];\n evil -> x [label=\"\\N";
        for step in plan.steps.iter_mut().filter(|s| s.guest == "exa01vm02") {
            step.guest = evil.to_string();
        }
        plan.moves[1].guest = evil.to_string();
        let dot = plan_dot(&plan);
        assert_eq!(node_lines(&dot).len(), plan.steps.len());
        assert_eq!(
            edge_lines(&dot).len(),
            plan.steps.iter().map(|s| s.depends_on.len()).sum::<usize>()
        );
        assert!(
            dot.contains("label=\"vm\\\"];\\n evil -> x [label=\\\"\\\\N\\nSTOP_GUEST\""),
            "{dot}"
        );
        if let Some(svg) = graphviz_svg(&dot) {
            // The name shows literally (`\N` not expanded to the node id).
            assert!(svg.contains("vm&quot;];"), "{svg}");
            assert!(svg.contains("[label=&quot;\\N"), "{svg}");
        }
    }

    #[test]
    fn dependencies_on_missing_steps_are_left_out() {
        let mut plan = sample_plan();
        plan.steps[0]
            .depends_on
            .push("ghost:STOP_GUEST".to_string());
        let dot = plan_dot(&plan);
        assert!(!dot.contains("ghost"));
        assert_eq!(
            edge_lines(&dot).len(),
            plan.steps.iter().map(|s| s.depends_on.len()).sum::<usize>() - 1
        );
    }

    #[test]
    fn holds_are_dotted_and_labelled() {
        let mut plan = sample_plan();
        let (step, waits_for) = plan
            .steps
            .iter()
            .find_map(|s| Some((s.id.clone(), s.depends_on.first()?.clone())))
            .expect("a step with a dependency");
        let before = plan_dot(&plan);
        assert!(!before.contains("hold"));
        let timing = plan.timing.as_mut().expect("the sample plan has a timing");
        timing.holds.push(crate::schedule::Hold { step, waits_for });
        let dot = plan_dot(&plan);
        let held: Vec<&str> = edge_lines(&dot)
            .into_iter()
            .filter(|l| l.contains("label=\"hold\""))
            .collect();
        assert_eq!(held.len(), 1, "{dot}");
        assert!(held[0].contains("style=dotted"));
        assert_eq!(edge_lines(&dot).len(), edge_lines(&before).len());
    }
}
