//! The benchmark shape: drain 5 % of a 10,000-host, 100,000-guest fleet. Ignored by default
//! (it builds a large topology); run with
//! `cargo test --release --lib schedule::tests::scale -- --ignored --nocapture`.

use std::time::Instant;

use crate::diff::fixtures::*;
use crate::diff::{desired, moves};
use crate::schedule::{Limits, schedule};

#[test]
#[ignore = "large; run explicitly in release mode"]
fn drain_five_percent_of_a_large_fleet() {
    let versions = ["24.1.0", "24.1.3", "25.1.0"];
    let hosts = (0..10_000).map(|i| {
        let mut h = host(&format!("exa{:05}adm", i), 1536, 96);
        h.image_version = Some(versions[i % versions.len()].parse().expect("version"));
        h
    });
    let name = |i: usize| format!("vm{i:06}.example.com");
    // Ten guests per host; guests 4k … 4k+3 form cluster k, on four consecutive hosts.
    let guests = (0..100_000).map(|i| {
        let memory_gib = 32 + 32 * (i as u64 % 4);
        guest(
            &name(i),
            &format!("exa{:05}adm", i % 10_000),
            memory_gib,
            4 + (i as u32 % 3) * 2,
        )
    });
    let mut topo = topology(hosts.collect(), guests.collect());
    for k in 0..25_000 {
        let members: Vec<String> = (4 * k..4 * k + 4).map(name).collect();
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        add_cluster(&mut topo, &format!("cl{k}"), &refs);
    }
    let mut b = ConfigBuilder::new();
    for i in (0..10_000).step_by(20) {
        b = b.drain(&format!("exa{:05}adm", i));
    }

    let started = Instant::now();
    let d = desired(&b.config, &topo).expect("valid");
    let placed = started.elapsed();
    let (mvs, problems) = moves(&b.config, &topo, &d);
    let moved = started.elapsed();
    let s = schedule(&mvs, &topo, &Limits::from_desired(&d, true)).expect("schedules");
    let total = started.elapsed();
    eprintln!(
        "{} moves, {} problems, {} steps, {} waves; desired {placed:?}, moves {:?}, schedule {:?}, total {total:?}",
        mvs.len(),
        problems.len(),
        s.steps.len(),
        s.waves.len(),
        moved - placed,
        total - moved
    );
    assert_eq!(mvs.len(), 5_000);
    assert!(
        problems.is_empty(),
        "{:#?}",
        &problems[..problems.len().min(3)]
    );
}
