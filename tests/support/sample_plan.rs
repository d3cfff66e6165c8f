// Sample plans, built by hand, for the tests of rendering and of the saved plan file.
//
// Shared by the library's unit tests (src/plan/sample.rs) and the integration tests
// (tests/plan_schema.rs): the including module brings the plan types into scope, so the same
// builders serve both crates. Steps are chained the way MIGRATE GUEST orders them and waves are
// computed from `depends_on`, so waves, steps and moves stay consistent with each other.

/// The es.xml path every sample plan names.
pub const SAMPLE_ES_XML_PATH: &str = "/u01/oeda/exa01/es.xml";

/// A host's guest list in a small es.xml fragment (what the es.xml diff shows).
fn sample_es_xml(hosts: &[(&str, &[&str])]) -> String {
    let mut xml = String::from("<engineeredSystem xmlns=\"model\">\n  <machines>\n");
    for (host, guests) in hosts {
        xml.push_str(&format!("    <machine id=\"{host}.example.com_id\">\n"));
        xml.push_str(&format!("      <hostName>{host}.example.com</hostName>\n"));
        xml.push_str("      <osType>LinuxKVM</osType>\n");
        for guest in *guests {
            xml.push_str(&format!("      <machine id=\"{guest}.example.com_id\"/>\n"));
        }
        xml.push_str("    </machine>\n");
    }
    xml.push_str("  </machines>\n</engineeredSystem>\n");
    xml
}

fn sample_move(
    guest: &str,
    from: &str,
    to: &str,
    mode: MigrationMode,
    memory_gib: u64,
    vcpus: u32,
    reason: &str,
) -> Move {
    Move {
        guest: guest.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        mode,
        reason: reason.to_string(),
        memory_mib: memory_gib * 1024,
        vcpus,
        pivot: false,
        kind: Default::default(),
        domain: None,
        transport: None,
    }
}

/// What each step does, in the words the planner would use.
fn sample_detail(kind: StepKind, mv: &Move) -> (String, Vec<String>) {
    let (g, from, to) = (&mv.guest, &mv.from, &mv.to);
    match kind {
        StepKind::StopGuest => (format!("shut down {g} on {from}"), vec![]),
        StepKind::CreateBridges => {
            let items = vec!["vmeth0".to_string(), "vmbondeth0.101".to_string()];
            (
                format!("create bridges {} on {to}", items.join(", ")),
                items,
            )
        }
        StepKind::DetachInterfaces => (
            format!("detach 2 interfaces of {g} on {from}"),
            vec!["eth0".into(), "bondeth0".into()],
        ),
        StepKind::DetachVolumes => (
            format!("detach the EDV volumes of {g} from {from}"),
            vec!["u01".into(), "system".into()],
        ),
        StepKind::AttachVolumes => (
            format!("attach the EDV volumes of {g} on {to}"),
            vec!["u01".into(), "system".into()],
        ),
        StepKind::MigrateGuest => (format!("{} migration {from} → {to}", mv.mode), vec![]),
        StepKind::AttachInterfaces => (
            format!("attach 2 interfaces of {g} on {to}"),
            vec!["eth0".into(), "bondeth0".into()],
        ),
        StepKind::StartupGuest => (format!("start {g} on {to}"), vec![]),
        StepKind::HostCommand => (format!("run the host command on {to}"), vec![]),
        StepKind::WaitHost => (format!("wait until {to} is back"), vec![]),
    }
}

/// The step id of `kind` for the `occurrence`-th move (1-based) of a guest.
fn sample_step_id(guest: &str, kind: StepKind, occurrence: usize) -> String {
    if occurrence >= 2 {
        format!("{guest}:{kind}#{occurrence}")
    } else {
        format!("{guest}:{kind}")
    }
}

/// The steps of move `move_index`, each depending on the one before it; the first also depends
/// on `after` (cross-move edges, e.g. the previous hop of the same guest).
fn sample_chain(
    moves: &[Move],
    move_index: usize,
    kinds: &[StepKind],
    occurrence: usize,
    after: &[String],
) -> Vec<Step> {
    let mv = &moves[move_index];
    let mut steps: Vec<Step> = Vec::new();
    for &kind in kinds {
        let depends_on = match steps.last() {
            Some(prev) => vec![prev.id.clone()],
            None => after.to_vec(),
        };
        let (detail, items) = sample_detail(kind, mv);
        steps.push(Step {
            id: sample_step_id(&mv.guest, kind, occurrence),
            kind,
            guest: mv.guest.clone(),
            from: mv.from.clone(),
            to: mv.to.clone(),
            move_index,
            depends_on,
            detail,
            items,
        });
    }
    steps
}

/// Layered waves: a step sits one wave after the latest of its dependencies. Steps must be
/// listed after their dependencies (the samples build them that way).
fn sample_waves(steps: &[Step]) -> Vec<Vec<String>> {
    let mut wave_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut waves: Vec<Vec<String>> = Vec::new();
    for step in steps {
        let wave = step
            .depends_on
            .iter()
            .map(|d| {
                wave_of
                    .get(d.as_str())
                    .expect("sample steps come after their dependencies")
                    + 1
            })
            .max()
            .unwrap_or(0);
        wave_of.insert(&step.id, wave);
        if waves.len() <= wave {
            waves.resize(wave + 1, Vec::new());
        }
        waves[wave].push(step.id.clone());
    }
    waves
}

fn sample_host(
    name: &str,
    before: (u64, u32, usize),
    after: (u64, u32, usize),
    peak_gib: u64,
) -> HostSummary {
    HostSummary {
        name: name.to_string(),
        memory_mib: 64 * 1024,
        memory_used_mib_before: before.0 * 1024,
        memory_used_mib_after: after.0 * 1024,
        cpus: 16,
        vcpu_limit: 32,
        vcpus_used_before: before.1,
        vcpus_used_after: after.1,
        guests_before: before.2,
        guests_after: after.2,
        memory_peak_mib: peak_gib * 1024,
    }
}

fn sample_fingerprints(guests: &[(&str, &str)]) -> Fingerprints {
    Fingerprints {
        es_xml_sha256: "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b2d4f6a8c0e2b4d6f8a0c2e4b6d"
            .to_string(),
        config_sha256: "1b3d5f7091a2c4e6f8b0d2a4c6e8f0b2d4a6c8e0f2b4d6a8c0e2f4b6d8a0c2e4"
            .to_string(),
        guests: guests
            .iter()
            .map(|(g, hs)| (g.to_string(), hs.to_string()))
            .collect(),
    }
}

const SKIP_LIVE: &str = "live migration keeps the guest running";

/// Draining exa01adm01: three moves (one live, two offline), a cross-move capacity edge, skipped
/// steps, a memory drift on exa01vm04 and an image-version error on exa01vm02.
pub fn sample_plan() -> Plan {
    use StepKind::*;
    let moves = vec![
        sample_move(
            "exa01vm01",
            "exa01adm01",
            "exa01adm02",
            MigrationMode::Live,
            16,
            4,
            "host exa01adm01 is drained; exa01adm02 has the most free memory (40 GiB)",
        ),
        sample_move(
            "exa01vm02",
            "exa01adm01",
            "exa01adm03",
            MigrationMode::Offline,
            32,
            8,
            "host exa01adm01 is drained; exa01adm02 would break anti-affinity of cluster c1",
        ),
        sample_move(
            "exa01vm03",
            "exa01adm01",
            "exa01adm02",
            MigrationMode::Offline,
            8,
            2,
            "host exa01adm01 is drained; exa01adm02 has the most free memory (24 GiB)",
        ),
    ];
    let mut steps = sample_chain(&moves, 0, &[CreateBridges, MigrateGuest], 1, &[]);
    steps.extend(sample_chain(
        &moves,
        1,
        &[
            StopGuest,
            DetachInterfaces,
            DetachVolumes,
            AttachVolumes,
            MigrateGuest,
            AttachInterfaces,
            StartupGuest,
        ],
        1,
        &[],
    ));
    let mut third = sample_chain(&moves, 2, &StepKind::ALL, 1, &[]);
    // Capacity: exa01vm03 lands on exa01adm02 only after exa01vm01 has, to keep the peak in bounds.
    third[5]
        .depends_on
        .push("exa01vm01:MIGRATE_GUEST".to_string());
    steps.extend(third);

    let skipped_steps = [
        ("exa01vm01", StopGuest, SKIP_LIVE),
        ("exa01vm01", DetachInterfaces, SKIP_LIVE),
        ("exa01vm01", DetachVolumes, SKIP_LIVE),
        ("exa01vm01", AttachVolumes, SKIP_LIVE),
        ("exa01vm01", AttachInterfaces, SKIP_LIVE),
        ("exa01vm01", StartupGuest, SKIP_LIVE),
        (
            "exa01vm02",
            CreateBridges,
            "bridges vmeth0, vmbondeth0.101 already exist on exa01adm03",
        ),
    ]
    .into_iter()
    .map(|(guest, kind, reason)| SkippedStep {
        guest: guest.to_string(),
        kind,
        reason: reason.to_string(),
    })
    .collect();

    let before = sample_es_xml(&[
        ("exa01adm01", &["exa01vm01", "exa01vm02", "exa01vm03"]),
        ("exa01adm02", &["exa01vm04"]),
        ("exa01adm03", &["exa01vm05"]),
    ]);
    let after = sample_es_xml(&[
        ("exa01adm01", &[]),
        ("exa01adm02", &["exa01vm04", "exa01vm01", "exa01vm03"]),
        ("exa01adm03", &["exa01vm05", "exa01vm02"]),
    ]);

    let waves = sample_waves(&steps);
    // What berth predicts for these steps on the default duration model.
    let timing = predict(&steps, &moves, &waves, &DurationModel::default(), Concurrency::default()).ok();
    Plan {
        format_version: FORMAT_VERSION,
        berth_version: "0.1.0".to_string(),
        created_at: "2025-03-14T09:26:53Z".to_string(),
        es_xml_path: SAMPLE_ES_XML_PATH.to_string(),
        waves,
        moves,
        steps,
        skipped_steps,
        hosts: vec![
            sample_host("exa01adm01", (56, 14, 3), (0, 0, 0), 56),
            sample_host("exa01adm02", (24, 6, 1), (48, 12, 3), 48),
            sample_host("exa01adm03", (16, 4, 1), (48, 12, 2), 48),
        ],
        drift: vec![Drift {
            kind: DriftKind::MemoryMismatch,
            guest: Some("exa01vm04".to_string()),
            host: Some("exa01adm02".to_string()),
            es_xml: "16384 MiB".to_string(),
            libvirt: "24576 MiB".to_string(),
            message: "exa01vm04 has 24576 MiB in libvirt but es.xml says 16384 MiB".to_string(),
        }],
        errors: vec![PlanError {
            code: "image_version".to_string(),
            message: "exa01vm02 runs image 23.1.10 but exa01adm03 runs 22.1.0; the target must not be older".to_string(),
            guest: Some("exa01vm02".to_string()),
            host: Some("exa01adm03".to_string()),
        }],
        rebalances: vec![RebalanceOutcome {
            name: "rack1".to_string(),
            spreads: vec![ResourceSpread {
                resource: "memory".to_string(),
                before: 0.5,
                after: 0.375,
            }],
            threshold: 0.1,
            moves: 1,
            stop: RebalanceStop::Budget,
            budget: vec!["max_moves = 1".to_string()],
            above_threshold: 0.275,
            message: "rebalance \"rack1\" stopped at its budget (max_moves = 1) after 1 move: memory spread 50.0% → 37.5%, \
                      still 27.5 points above the threshold of 10.0%; the next plan continues it"
                .to_string(),
        }],
        maintenance: Vec::new(),
        phases: Vec::new(),
        already_serviced: Vec::new(),
        fingerprints: sample_fingerprints(&[
            ("exa01vm01", "exa01adm01/running"),
            ("exa01vm02", "exa01adm01/running"),
            ("exa01vm03", "exa01adm01/shutoff"),
            ("exa01vm04", "exa01adm02/running"),
            ("exa01vm05", "exa01adm03/running"),
        ]),
        intents: Default::default(),
        es_xml_diff: unified_diff(SAMPLE_ES_XML_PATH, &before, &after),
        timing,
    }
}

/// A live swap of exa01vm04 and exa01vm05 that breaks the cycle through the pivot host
/// exa01adm01: exa01vm04 hops there first and on to exa01adm03 last.
pub fn sample_pivot_plan() -> Plan {
    use StepKind::*;
    let live = &[CreateBridges, MigrateGuest];
    let mut moves = vec![
        sample_move(
            "exa01vm04",
            "exa01adm02",
            "exa01adm01",
            MigrationMode::Live,
            24,
            6,
            "pivot hop: breaks the live swap cycle exa01adm02 ⇄ exa01adm03",
        ),
        sample_move(
            "exa01vm05",
            "exa01adm03",
            "exa01adm02",
            MigrationMode::Live,
            16,
            4,
            "configuration places exa01vm05 on exa01adm02",
        ),
        sample_move(
            "exa01vm04",
            "exa01adm01",
            "exa01adm03",
            MigrationMode::Live,
            24,
            6,
            "configuration places exa01vm04 on exa01adm03",
        ),
    ];
    moves[0].pivot = true;
    moves[2].pivot = true;
    let mut steps = sample_chain(&moves, 0, live, 1, &[]);
    steps.extend(sample_chain(
        &moves,
        1,
        live,
        1,
        &["exa01vm04:MIGRATE_GUEST".to_string()],
    ));
    steps.extend(sample_chain(
        &moves,
        2,
        live,
        2,
        &["exa01vm05:MIGRATE_GUEST".to_string()],
    ));
    Plan {
        format_version: FORMAT_VERSION,
        berth_version: "0.1.0".to_string(),
        created_at: "2025-03-14T10:00:00Z".to_string(),
        es_xml_path: SAMPLE_ES_XML_PATH.to_string(),
        waves: sample_waves(&steps),
        moves,
        steps,
        skipped_steps: Vec::new(),
        hosts: vec![
            sample_host("exa01adm01", (0, 0, 0), (0, 0, 0), 24),
            sample_host("exa01adm02", (24, 6, 1), (16, 4, 1), 24),
            sample_host("exa01adm03", (16, 4, 1), (24, 6, 1), 24),
        ],
        drift: Vec::new(),
        errors: Vec::new(),
        rebalances: Vec::new(),
        maintenance: Vec::new(),
        phases: Vec::new(),
        already_serviced: Vec::new(),
        fingerprints: sample_fingerprints(&[
            ("exa01vm04", "exa01adm02/running"),
            ("exa01vm05", "exa01adm03/running"),
        ]),
        intents: Default::default(),
        es_xml_diff: unified_diff(
            SAMPLE_ES_XML_PATH,
            &sample_es_xml(&[
                ("exa01adm02", &["exa01vm04"]),
                ("exa01adm03", &["exa01vm05"]),
            ]),
            &sample_es_xml(&[
                ("exa01adm02", &["exa01vm05"]),
                ("exa01adm03", &["exa01vm04"]),
            ]),
        ),
        timing: None,
    }
}

/// Guests already where the configuration wants them.
pub fn sample_no_change_plan() -> Plan {
    Plan {
        format_version: FORMAT_VERSION,
        berth_version: "0.1.0".to_string(),
        created_at: "2025-03-14T11:00:00Z".to_string(),
        es_xml_path: SAMPLE_ES_XML_PATH.to_string(),
        moves: Vec::new(),
        steps: Vec::new(),
        skipped_steps: Vec::new(),
        waves: Vec::new(),
        hosts: vec![sample_host("exa01adm02", (24, 6, 1), (24, 6, 1), 24)],
        drift: Vec::new(),
        errors: Vec::new(),
        rebalances: Vec::new(),
        maintenance: Vec::new(),
        phases: Vec::new(),
        already_serviced: Vec::new(),
        fingerprints: sample_fingerprints(&[("exa01vm04", "exa01adm02/running")]),
        intents: Default::default(),
        es_xml_diff: String::new(),
        timing: None,
    }
}

/// A plan far too big for one pull-request comment: `moves` offline moves of 8 steps each and
/// an es.xml diff that moves every guest.
pub fn sample_huge_plan(moves: usize) -> Plan {
    let hosts: Vec<String> = (1..=8).map(|h| format!("exa{h:02}adm01")).collect();
    let all_moves: Vec<Move> = (0..moves)
        .map(|i| {
            let from = &hosts[i % hosts.len()];
            let to = &hosts[(i + 1) % hosts.len()];
            sample_move(
                &format!("exa01vm{i:05}"),
                from,
                to,
                MigrationMode::Offline,
                8,
                2,
                "rebalance: spread guests evenly over the rack",
            )
        })
        .collect();
    let mut steps = Vec::new();
    for i in 0..all_moves.len() {
        steps.extend(sample_chain(&all_moves, i, &StepKind::ALL, 1, &[]));
    }
    let before: String = all_moves
        .iter()
        .map(|m| format!("<guest name=\"{}\" host=\"{}\"/>\n", m.guest, m.from))
        .collect();
    let after: String = all_moves
        .iter()
        .map(|m| format!("<guest name=\"{}\" host=\"{}\"/>\n", m.guest, m.to))
        .collect();
    Plan {
        format_version: FORMAT_VERSION,
        berth_version: "0.1.0".to_string(),
        created_at: "2025-03-14T12:00:00Z".to_string(),
        es_xml_path: SAMPLE_ES_XML_PATH.to_string(),
        waves: sample_waves(&steps),
        moves: all_moves,
        steps,
        skipped_steps: Vec::new(),
        hosts: hosts
            .iter()
            .map(|h| sample_host(h, (32, 8, 4), (32, 8, 4), 40))
            .collect(),
        drift: Vec::new(),
        errors: Vec::new(),
        rebalances: Vec::new(),
        maintenance: Vec::new(),
        phases: Vec::new(),
        already_serviced: Vec::new(),
        fingerprints: sample_fingerprints(&[]),
        intents: Default::default(),
        es_xml_diff: unified_diff(SAMPLE_ES_XML_PATH, &before, &after),
        timing: None,
    }
}
