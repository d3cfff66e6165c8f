//! Two-host racks built from the real OEDA fixtures (each VM cluster has one member on each
//! host), planned through the real binary on libvirt's test driver.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/rack.rs"]
mod rack;

use cli::{assert_contains, assert_exit, berth, stderr, stdout};
use rack::Rack;

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
    assert_contains(
        &err,
        "host \"iad103712exdcl04\" is a storage cell in es.xml",
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
    // A plan's errors come on stderr, before the plan.
    let text = stderr(&out);
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
    assert_contains(&text, &format!("[no_target] guest {guest}, host {host}:"));
    assert!(!text.contains("host :"), "{text}");
}

fn plan_json(rack: &Rack, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["plan", "--json"];
    all.extend_from_slice(args);
    let out = berth(rack.path(), &all);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", stdout(&out), stderr(&out)))
}

/// The guests of the JSON plan's moves of `kind` (`stop_in_place`, `start_in_place`).
fn moves_of_kind(plan: &serde_json::Value, kind: &str) -> Vec<String> {
    plan["moves"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"].as_str() == Some(kind))
        .map(|m| m["guest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn maintenance_of_one_host_of_a_two_host_rack_stops_one_member_per_cluster_in_place() {
    for fixture in ["elastic_sample.xml", "ipv6_sample.xml"] {
        let rack = Rack::new(fixture, by_host_name, "");
        let host = rack.host(0).to_string();
        let plan = plan_json(&rack, &["-maintenance", &host]);
        assert!(
            plan["errors"].as_array().unwrap().is_empty(),
            "{fixture}: {}",
            plan["errors"]
        );
        // Every guest of the host has its RAC peer on the other host: none can move, each is
        // stopped where it is, and nothing is started anywhere.
        let mut stopped = moves_of_kind(&plan, "stop_in_place");
        stopped.sort();
        let mut on_host = rack.guests_on(0);
        on_host.sort();
        assert_eq!(stopped, on_host, "{fixture}");
        let steps = plan["steps"].as_array().unwrap();
        assert_eq!(steps.len(), on_host.len());
        for s in steps {
            assert_eq!(s["kind"], "STOP_GUEST", "{s}");
            assert_eq!(s["from"], host.as_str());
            assert_eq!(s["to"], host.as_str());
        }
        // The guests on the other host (the other member of each cluster) are untouched.
        for guest in rack.guests_on(1) {
            assert!(!steps.iter().any(|s| s["guest"] == guest.as_str()));
        }
        let report = plan["maintenance"].as_array().unwrap();
        assert_eq!(report.len(), on_host.len());
        for m in report {
            assert_eq!(m["action"], "stopped_in_place");
            assert_eq!(m["host"], host.as_str());
            assert!(m.get("downtime_s").is_none(), "down until the end: {m}");
        }
        // Text, Markdown and DOT say so too.
        let text = stdout(&berth(rack.path(), &["plan", "-maintenance", &host]));
        assert_contains(&text, "Maintenance:");
        assert_contains(&text, &format!("{}: stopped in place on", on_host[0]));
        assert_contains(&text, "down until the end of maintenance");
        assert_contains(&text, "1 stopped in place");
        let markdown = stdout(&berth(
            rack.path(),
            &["plan", "--markdown", "-maintenance", &host],
        ));
        assert_contains(&markdown, "#### Maintenance");
        assert_contains(&markdown, "stopped in place on");
        // `graph` plans from the configuration: put the intent there.
        let hcl = rack.path().join("main.hcl");
        let before = std::fs::read_to_string(&hcl).unwrap();
        std::fs::write(
            &hcl,
            format!("{before}\nhost \"{host}\" {{\n  maintenance = true\n}}\n"),
        )
        .unwrap();
        let dot = stdout(&berth(rack.path(), &["graph"]));
        assert_contains(&dot, "stop in place on");
        assert_contains(&dot, "down until the end of maintenance");
        std::fs::write(&hcl, before).unwrap();
    }
}

#[test]
fn maintenance_of_both_hosts_at_once_would_take_a_whole_cluster_down_and_is_refused() {
    let rack = Rack::new("elastic_sample.xml", by_host_name, "");
    let plan = plan_json(
        &rack,
        &["-maintenance", rack.host(0), "-maintenance", rack.host(1)],
    );
    let errors = plan["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "allows 1 of its members unavailable at once, but maintenance would stop 2 in place"
        ),
        "{message}"
    );
    assert_contains(message, "(maintenance default)");
}

/// The JSON events of `berth apply --json`, and the ids of the steps that finished.
fn applied(rack: &Rack, args: &[&str]) -> Vec<String> {
    let mut all = vec!["apply", "-auto-approve", "--json"];
    all.extend_from_slice(args);
    let out = berth(rack.path(), &all);
    assert_exit(&out, 0);
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "done")
        .map(|e| e["step"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn apply_stops_in_place_and_end_maintenance_starts_the_same_guests_again() {
    let rack = Rack::new("elastic_sample.xml", by_host_name, "");
    let host = rack.host(0).to_string();
    let guest = rack.guests_on(0)[0].clone();
    let es_before = std::fs::read_to_string(rack.path().join("es.xml")).unwrap();

    let done = applied(&rack, &["-maintenance", &host]);
    assert_eq!(done, vec![format!("{guest}:STOP_GUEST")]);
    // Stopped in place: es.xml keeps it on its host.
    let es_after = std::fs::read_to_string(rack.path().join("es.xml")).unwrap();
    assert_eq!(es_before, es_after);
    let state = std::fs::read_to_string(rack.path().join("berth.state")).unwrap();
    assert_contains(&state, "STOP_GUEST");

    // Each berth process opens the test driver afresh from the node files: record there what
    // the first apply did to the domain (shut off), as a real libvirtd would remember it.
    let node = rack.path().join(format!("nodes/{host}.xml"));
    let text = std::fs::read_to_string(&node).unwrap();
    std::fs::write(
        &node,
        text.replace(
            "<devices/></domain>",
            "<devices/><test:runstate>5</test:runstate></domain>",
        ),
    )
    .unwrap();

    // The guest is shut off now: without the journal, nothing says berth stopped it.
    let plain = plan_json(&rack, &[]);
    assert!(plain["moves"].as_array().unwrap().is_empty(), "{plain}");

    let ending = plan_json(&rack, &["-end-maintenance", &host]);
    assert_eq!(
        moves_of_kind(&ending, "start_in_place"),
        vec![guest.clone()]
    );
    assert_eq!(ending["maintenance"][0]["action"], "started_in_place");
    let done = applied(&rack, &["-end-maintenance", &host]);
    assert_eq!(done, vec![format!("{guest}:STARTUP_GUEST")]);

    // Running again (as libvirtd would remember): the journal says it was started, so ending
    // the maintenance once more has nothing to do.
    std::fs::write(&node, text).unwrap();
    let again = plan_json(&rack, &["-end-maintenance", &host]);
    assert!(again["moves"].as_array().unwrap().is_empty(), "{again}");
}

#[test]
fn maintenance_moves_the_guests_that_can_move_with_their_predicted_downtime() {
    let dir = cli::example("drain-host");
    let out = berth(&dir, &["plan", "--json", "-maintenance", "exa01adm01"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        plan["errors"].as_array().unwrap().is_empty(),
        "{}",
        plan["errors"]
    );
    let report = plan["maintenance"].as_array().unwrap();
    assert_eq!(report.len(), 3, "{report:?}");
    for m in report {
        assert_eq!(m["action"], "moved", "{m}");
        assert_eq!(m["host"], "exa01adm01.example.com");
        assert_ne!(m["to"], "exa01adm01.example.com");
        // Offline moves: down from STOP_GUEST to STARTUP_GUEST, as the duration model
        // predicts; vm03 is shut off already and loses nothing.
        let downtime = m["downtime_s"].as_f64().unwrap();
        if m["guest"] == "exa01adm01vm03.example.com" {
            assert_eq!(downtime, 0.0, "{m}");
        } else {
            assert!(downtime > 0.0, "{m}");
        }
    }
    assert!(moves_of_kind(&plan, "stop_in_place").is_empty());
}

/// libvirt names each domain by the guest's es.xml machine id without `_id` (in the ExaCS-style
/// fixtures, the NAT admin name, while `<hostName>` is the client name).
fn by_machine_id(_host_name: &str, machine_id: &str) -> String {
    machine_id.trim_end_matches("_id").to_string()
}

fn by_short_name(host_name: &str, _machine_id: &str) -> String {
    host_name.split('.').next().unwrap().to_string()
}

fn by_template(host_name: &str, _machine_id: &str) -> String {
    format!("kvm-{}", by_short_name(host_name, ""))
}

#[test]
fn without_a_domain_naming_other_domain_names_are_missing_and_extra_guests() {
    let rack = Rack::new("elastic_sample.xml", by_machine_id, "");
    let plan = plan_json(&rack, &[]);
    let kinds: Vec<&str> = plan["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "missing_domain").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "extra_domain").count(), 2);
}

#[test]
fn each_domain_naming_matches_es_xml_guests_with_their_domains() {
    type Naming = fn(&str, &str) -> String;
    let forms: [(&str, Naming); 4] = [
        ("host_name", by_host_name),
        ("short_name", by_short_name),
        ("machine_id", by_machine_id),
        ("kvm-{short_name}", by_template),
    ];
    for fixture in ["elastic_sample.xml", "ipv6_sample.xml"] {
        for (setting, naming) in forms {
            let rack = Rack::new(fixture, naming, "");
            let hcl = rack.path().join("main.hcl");
            let text = std::fs::read_to_string(&hcl).unwrap();
            std::fs::write(
                &hcl,
                text.replacen(
                    "inventory {",
                    &format!("inventory {{\n  domain_name = \"{setting}\""),
                    1,
                ),
            )
            .unwrap();
            let plan = plan_json(&rack, &[]);
            assert!(
                plan["drift"].as_array().unwrap().is_empty(),
                "{fixture} {setting}: {}",
                plan["drift"]
            );
            assert!(plan["errors"].as_array().unwrap().is_empty());
            // Planning and apply act on the domain: maintenance stops it by its libvirt name.
            let host = rack.host(0).to_string();
            let guest = rack.guests_on(0)[0].clone();
            let plan = plan_json(&rack, &["-maintenance", &host]);
            let expected_domain = naming(
                &guest,
                &rack.es.guests.iter().find(|g| g.name == guest).unwrap().id,
            );
            if expected_domain == guest {
                assert!(plan["moves"][0].get("domain").is_none());
            } else {
                assert_eq!(plan["moves"][0]["domain"], expected_domain.as_str());
            }
            let done = applied(&rack, &["-maintenance", &host]);
            assert_eq!(
                done,
                vec![format!("{guest}:STOP_GUEST")],
                "{fixture} {setting}"
            );
        }
    }
}

#[test]
fn a_bad_domain_naming_is_a_located_error() {
    let rack = Rack::new("elastic_sample.xml", by_host_name, "");
    let hcl = rack.path().join("main.hcl");
    let text = std::fs::read_to_string(&hcl).unwrap();
    std::fs::write(
        &hcl,
        text.replacen("inventory {", "inventory {\n  domain_name = \"{host}\"", 1),
    )
    .unwrap();
    let out = berth(rack.path(), &["plan"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_contains(&err, "`{host}` is not a placeholder");
    assert_contains(&err, "main.hcl:2");
}

#[path = "common/fs.rs"]
mod fs_util;

#[test]
fn drift_source_es_xml_moves_a_stray_guest_back_and_never_says_no_changes() {
    let tmp = tempfile::tempdir().unwrap();
    fs_util::copy_dir(&cli::example("drift"), tmp.path());
    let hcl = tmp.path().join("main.hcl");
    let text = std::fs::read_to_string(&hcl).unwrap();
    let text = text
        .replacen("inventory {", "inventory {\n  drift_source = \"es_xml\"", 1)
        .replace("drain = true", "drain = false");
    std::fs::write(&hcl, &text).unwrap();
    let out = berth(tmp.path(), &["plan", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        plan["errors"].as_array().unwrap().is_empty(),
        "{}",
        plan["errors"]
    );
    let moves = plan["moves"].as_array().unwrap();
    assert_eq!(moves.len(), 1, "{moves:?}");
    // libvirt runs it on adm02; es.xml, which wins, puts it on adm01: back it goes, and es.xml
    // needs no change.
    assert_eq!(moves[0]["guest"], "exa01adm01vm02.example.com");
    assert_eq!(moves[0]["from"], "exa01adm02.example.com");
    assert_eq!(moves[0]["to"], "exa01adm01.example.com");
    assert_eq!(plan["es_xml_diff"], "");

    // With exa01adm01 drained it cannot go back: an error that says so, never "No changes".
    std::fs::write(&hcl, text.replace("drain = false", "drain = true")).unwrap();
    let out = berth(tmp.path(), &["plan"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(!text.contains("No changes"), "{text}");
    let errors = stderr(&out);
    assert_contains(&errors, "[es_xml] guest exa01adm01vm02.example.com");
}

#[test]
fn refresh_rewrites_es_xml_to_match_libvirt_after_asking_with_a_backup_and_a_record() {
    let tmp = tempfile::tempdir().unwrap();
    fs_util::copy_dir(&cli::example("drift"), tmp.path());
    let dir = tmp.path();
    let es_xml = dir.join("es.xml");
    let before = std::fs::read_to_string(&es_xml).unwrap();

    // No terminal to ask on: refused, nothing written.
    let out = berth(dir, &["refresh"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("+++ "),
        "the diff comes first: {}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("-auto-approve"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&es_xml).unwrap(), before);

    let out = berth(dir, &["refresh", "-auto-approve"]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains(
            "~ exa01adm01vm02.example.com: host exa01adm01.example.com → exa01adm02.example.com"
        ),
        "{}",
        stdout(&out)
    );
    let after = std::fs::read_to_string(&es_xml).unwrap();
    assert_ne!(after, before);
    // The backup holds the file as it was; the state file records the refresh.
    let backups: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("es.xml.berth-backup-"))
        .collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(std::fs::read_to_string(&backups[0]).unwrap(), before);
    let state = std::fs::read_to_string(dir.join("state/berth.state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["refreshes"].as_array().unwrap().len(), 1, "{state}");
    // es.xml now says what libvirt does: no drift, and a second refresh has nothing to do.
    let plan = berth(dir, &["plan", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert!(
        plan["drift"].as_array().unwrap().is_empty(),
        "{}",
        plan["drift"]
    );
    let again = berth(dir, &["refresh", "-auto-approve"]);
    assert_eq!(again.status.code(), Some(0));
    assert_contains(&stdout(&again), "nothing to refresh");
}

#[test]
fn refresh_takes_memory_and_vcpus_from_libvirt_in_the_files_own_units() {
    let rack = Rack::new("elastic_sample.xml", by_host_name, "");
    let host = rack.host(0).to_string();
    let node = rack.path().join(format!("nodes/{host}.xml"));
    let text = std::fs::read_to_string(&node).unwrap();
    // libvirt gives the guest 1400 GiB and 40 vCPUs; es.xml says 1390Gb and 48.
    let edited = text
        .replace(
            &format!("{}</memory>", 1390u64 * 1024 * 1024),
            &format!("{}</memory>", 1400u64 * 1024 * 1024),
        )
        .replace(
            &format!("{}</currentMemory>", 1390u64 * 1024 * 1024),
            &format!("{}</currentMemory>", 1400u64 * 1024 * 1024),
        )
        .replace(">48</vcpu>", ">40</vcpu>");
    assert_ne!(edited, text);
    std::fs::write(&node, edited).unwrap();
    let out = berth(rack.path(), &["refresh", "-auto-approve"]);
    assert_exit(&out, 0);
    let diff = stdout(&out);
    assert_contains(&diff, "-            <guestMemory>1390Gb</guestMemory>");
    assert_contains(&diff, "+            <guestMemory>1400Gb</guestMemory>");
    assert_contains(&diff, "+            <guestCores>40</guestCores>");
    let plan = plan_json(&rack, &[]);
    assert!(
        plan["drift"].as_array().unwrap().is_empty(),
        "{}",
        plan["drift"]
    );
}

#[test]
fn refresh_refuses_while_a_host_does_not_answer() {
    let rack = Rack::new("elastic_sample.xml", by_host_name, "");
    std::fs::remove_file(rack.path().join(format!("nodes/{}.xml", rack.host(1)))).unwrap();
    let before = std::fs::read_to_string(rack.path().join("es.xml")).unwrap();
    let out = berth(rack.path(), &["refresh", "-auto-approve"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "cannot refresh es.xml while libvirt on {} does not answer",
            rack.host(1)
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(rack.path().join("es.xml")).unwrap(),
        before
    );
}

#[test]
fn import_pins_todays_placement_and_then_nothing_changes() {
    for fixture in ["elastic_sample.xml", "ipv6_sample.xml"] {
        let rack = Rack::new(fixture, by_host_name, "");
        let shown = berth(rack.path(), &["import"]);
        assert_eq!(shown.status.code(), Some(0), "{}", stderr(&shown));
        let text = stdout(&shown);
        for (i, _) in rack.es.hosts.iter().enumerate() {
            for guest in rack.guests_on(i) {
                assert!(
                    text.contains(&format!(
                        "guest \"{guest}\" {{\n  host = \"{}\"\n}}",
                        rack.host(i)
                    )),
                    "{text}"
                );
            }
        }
        assert_eq!(
            text.matches("guest \"").count(),
            rack.es.guests.len(),
            "{text}"
        );
        let out = berth(rack.path(), &["import", "-out", "guests.hcl"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(
            std::fs::read_to_string(rack.path().join("guests.hcl")).unwrap(),
            text
        );
        let plan = berth(rack.path(), &["plan", "--detailed-exitcode"]);
        assert_exit(&plan, 0);
        assert!(stdout(&plan).contains("No changes"), "{}", stdout(&plan));
        // It never overwrites a file, and guests that have a block now are left out.
        let again = berth(rack.path(), &["import", "-out", "guests.hcl"]);
        assert_eq!(again.status.code(), Some(1));
        let rest = stdout(&berth(rack.path(), &["import"]));
        assert_eq!(rest.matches("guest \"").count(), 0, "{rest}");
    }
}

#[test]
fn fmt_lays_out_the_configuration_keeping_comments_and_meaning() {
    let rack = Rack::new(
        "elastic_sample.xml",
        by_host_name,
        "# keep me\ndefaults {\nmode = \"offline\" # inline\n      memory_reserved = \"32GiB\"   \n}\n",
    );
    let main = rack.path().join("main.hcl");
    let before = std::fs::read_to_string(&main).unwrap();
    let plan_before = stdout(&berth(rack.path(), &["plan", "--json"]));

    let check = berth(rack.path(), &["fmt", "-check"]);
    assert_eq!(check.status.code(), Some(1));
    assert_eq!(stdout(&check), "main.hcl\n");
    assert_eq!(
        std::fs::read_to_string(&main).unwrap(),
        before,
        "-check changes nothing"
    );

    let out = berth(rack.path(), &["fmt"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = std::fs::read_to_string(&main).unwrap();
    assert!(
        after.contains(
            "# keep me\ndefaults {\n  mode            = \"offline\" # inline\n  memory_reserved = \"32GiB\"\n}\n"
        ),
        "{after}"
    );
    // Same meaning: the same plan (but for when it was made).
    let plan_after = stdout(&berth(rack.path(), &["plan", "--json"]));
    let strip = |p: &str| {
        let mut v: serde_json::Value = serde_json::from_str(p).unwrap();
        v["created_at"] = serde_json::Value::Null;
        v["fingerprints"]["config_sha256"] = serde_json::Value::Null;
        v
    };
    assert_eq!(strip(&plan_before), strip(&plan_after));
    assert_eq!(
        berth(rack.path(), &["fmt", "-check"]).status.code(),
        Some(0)
    );
}
