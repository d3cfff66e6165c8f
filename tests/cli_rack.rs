//! Two-host racks built from the real OEDA fixtures (each VM cluster has one member on each
//! host), planned through the real binary on libvirt's test driver.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/rack.rs"]
mod rack;

use cli::berth;
use rack::Rack;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn by_host_name(host_name: &str, _machine_id: &str) -> String {
    host_name.to_string()
}

#[test]
fn a_rack_that_agrees_with_es_xml_plans_no_changes() {
    for fixture in ["elastic_sample.xml", "ipv6_sample.xml"] {
        let rack = Rack::new(fixture, by_host_name, "");
        let out = berth(rack.path(), &["plan"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{fixture}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(stdout(&out).contains("No changes"), "{}", stdout(&out));
    }
}

#[test]
fn draining_a_storage_cell_says_it_is_a_cell() {
    let rack = Rack::new("elastic_sample.xml", by_host_name, "");
    let out = berth(rack.path(), &["plan", "-drain", "iad103712exdcl04"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("host \"iad103712exdcl04\" is a storage cell in es.xml"),
        "{err}"
    );
    assert!(!err.contains("did you mean"), "{err}");
    assert!(err.contains(rack.host(0)), "lists the KVM hosts: {err}");
}

#[test]
fn an_impossible_drain_gets_one_summary_line_pointing_at_maintenance() {
    let rack = Rack::new("elastic_sample.xml", by_host_name, "");
    let host = rack.host(0).to_string();
    let out = berth(rack.path(), &["plan", "-drain", &host]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let summaries: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("[drain_infeasible]"))
        .collect();
    assert_eq!(summaries.len(), 1, "{text}");
    assert!(
        summaries[0].contains(&format!(
            "the drain of {host} cannot be met: 1 of its 1 guests"
        )) && summaries[0].contains("anti-affinity")
            && summaries[0].contains("-maintenance"),
        "{}",
        summaries[0]
    );
    // The per-guest detail names the guest and its host, never an empty field.
    let guest = &rack.guests_on(0)[0];
    assert!(
        text.contains(&format!("[no_target] guest {guest}, host {host}:")),
        "{text}"
    );
    assert!(!text.contains("host :"), "{text}");
}
