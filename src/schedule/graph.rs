//! The step graph as a graph: cycles (petgraph) and waves (Kahn layering).

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::expand::Node;

/// Every strongly connected component with more than one step (a self-loop cannot occur: a
/// step never waits for itself), each sorted by node index, the components in order of their
/// smallest node.
pub(crate) fn cycles(nodes: &[Node]) -> Vec<Vec<usize>> {
    let mut graph: DiGraph<(), ()> = DiGraph::with_capacity(nodes.len(), nodes.len() * 2);
    for _ in nodes {
        graph.add_node(());
    }
    for (index, node) in nodes.iter().enumerate() {
        for &dep in &node.deps {
            graph.add_edge(NodeIndex::new(dep), NodeIndex::new(index), ());
        }
    }
    let mut found: Vec<Vec<usize>> = tarjan_scc(&graph)
        .into_iter()
        .filter(|component| component.len() > 1)
        .map(|component| {
            let mut members: Vec<usize> = component.into_iter().map(NodeIndex::index).collect();
            members.sort_unstable();
            members
        })
        .collect();
    found.sort();
    found
}

/// Kahn layering of an acyclic graph: wave 0 holds the steps without dependencies, wave `n` the
/// steps whose dependencies all lie in earlier waves and at least one in wave `n − 1`. Each wave
/// is sorted by step id, so the result is the same on every run.
pub(crate) fn waves(nodes: &[Node]) -> Vec<Vec<usize>> {
    let mut waiting: Vec<usize> = nodes.iter().map(|n| n.deps.len()).collect();
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (index, node) in nodes.iter().enumerate() {
        for &dep in &node.deps {
            successors[dep].push(index);
        }
    }
    let by_id = |wave: &mut Vec<usize>| wave.sort_by(|a, b| nodes[*a].id.cmp(&nodes[*b].id));
    let mut current: Vec<usize> = (0..nodes.len()).filter(|&i| waiting[i] == 0).collect();
    let mut waves = Vec::new();
    while !current.is_empty() {
        by_id(&mut current);
        let mut next = Vec::new();
        for &node in &current {
            for &succ in &successors[node] {
                waiting[succ] -= 1;
                if waiting[succ] == 0 {
                    next.push(succ);
                }
            }
        }
        waves.push(std::mem::replace(&mut current, next));
    }
    waves
}
