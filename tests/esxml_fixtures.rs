//! es.xml parsing against the real OEDA fixtures, a catalogue of broken inputs, the guest-move
//! rewrite and the synthetic generator.

use std::collections::HashMap;

use similar::{ChangeTag, TextDiff};

use berth::inventory::esxml::{
    EsSystem, EsXmlError, EsXmlErrorKind, GuestMove, SynthSpec, move_guests, parse,
    parse_with_layout, synthesize,
};

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../shared/oeda-fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read fixture {path}: {e}"))
}

fn load(name: &str) -> EsSystem {
    parse(name, &fixture(name)).unwrap_or_else(|e| panic!("{name} should load: {e}"))
}

fn host_of<'a>(system: &'a EsSystem, guest_id: &str) -> &'a str {
    &system
        .guests
        .iter()
        .find(|g| g.id == guest_id)
        .unwrap_or_else(|| panic!("no guest {guest_id}"))
        .host_id
}

const ELASTIC_H15: &str = "iad103716exdd015.iad103716exd.adminiad1.oraclevcn.com_id";
const ELASTIC_H16: &str = "iad103716exdd016.iad103716exd.adminiad1.oraclevcn.com_id";
const ELASTIC_G15: &str = "iad103716exddu1501.iad103716exd.adminiad1.oraclevcn.com_id";
const ELASTIC_G16: &str = "iad103716exddu1601.iad103716exd.adminiad1.oraclevcn.com_id";

// ---------------------------------------------------------------------------------------------
// Real fixtures

#[test]
fn elastic_sample_loads_hosts_guests_and_cluster() {
    let s = load("elastic_sample.xml");
    assert_eq!(s.oeda_version.as_deref(), Some("17.089.19:00"));
    assert_eq!(s.hosts.len(), 2);
    assert_eq!(s.guests.len(), 2);
    let host_ids: Vec<&str> = s.hosts.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(host_ids, [ELASTIC_H15, ELASTIC_H16]);
    assert_eq!(
        s.hosts[0].name,
        "iad103716exdd015.iad103716exd.adminiad1.oraclevcn.com"
    );
    assert_eq!(s.hosts[0].guest_ids, [ELASTIC_G15]);
    assert_eq!(s.hosts[0].line, 201);
    assert_eq!(s.hosts[0].image_version, None);
    assert_eq!(host_of(&s, ELASTIC_G15), ELASTIC_H15);
    assert_eq!(host_of(&s, ELASTIC_G16), ELASTIC_H16);
    for g in &s.guests {
        assert_eq!(g.vcpus, Some(48));
        assert_eq!(g.memory_mib, Some(1_423_360));
        assert_eq!(
            g.image_version.as_ref().map(|v| v.as_str()),
            Some("20.1.8.0.0")
        );
        assert_eq!(g.cluster_ids, ["c6_clusterHome"]);
        assert_eq!(g.network_ids.len(), 6);
    }
    assert_eq!(
        s.guests[0].name,
        "iad103716x8mcompexpn15c.clientsubnet.devx8melastic.oraclevcn.com"
    );
    assert_eq!(s.guests[0].line, 259);
    assert_eq!(s.clusters.len(), 1);
    assert_eq!(s.clusters[0].name, "c6-d89");
    assert_eq!(s.clusters[0].member_ids, [ELASTIC_G15, ELASTIC_G16]);
}

#[test]
fn elastic_sample_networks_resolve() {
    let s = load("elastic_sample.xml");
    let net = |suffix: &str| {
        let id = format!("iad103716exddu1501.iad103716exd.adminiad1.oraclevcn.com_{suffix}");
        s.networks
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no network {id}"))
            .clone()
    };
    let client = net("client");
    assert_eq!(
        (
            client.network_type.as_str(),
            client.master.as_deref(),
            client.vlan_id
        ),
        ("client", Some("bondeth0"), None)
    );
    let backup = net("backup");
    assert_eq!(
        (
            backup.network_type.as_str(),
            backup.master.as_deref(),
            backup.vlan_id
        ),
        ("backup", Some("bondeth1"), Some(1))
    );
    for g in &s.guests {
        for id in &g.network_ids {
            assert!(s.networks.iter().any(|n| &n.id == id), "{id}");
        }
    }
}

#[test]
fn ipv6_sample_loads() {
    let s = load("ipv6_sample.xml");
    assert_eq!((s.hosts.len(), s.guests.len()), (2, 2));
    for g in &s.guests {
        assert_eq!(g.memory_mib, Some(45 * 1024));
        assert_eq!(g.vcpus, Some(30));
        let host = s
            .hosts
            .iter()
            .find(|h| h.id == g.host_id)
            .expect("guest's host exists");
        assert_eq!(host.guest_ids, std::slice::from_ref(&g.id));
        assert!(!g.cluster_ids.is_empty());
    }
    assert_eq!(
        host_of(
            &s,
            "iad103716exddu1101.iad103716exd.adminiad1.oraclevcn.com_id"
        ),
        "iad103716exdd011.iad103716exd.adminiad1.oraclevcn.com_id"
    );
    assert_eq!(s.clusters.len(), 1);
    assert_eq!(s.clusters[0].member_ids.len(), 2);
}

#[test]
fn clusterless_loads_eighteen_hosts_without_guests() {
    let s = load("clusterless.xml");
    assert_eq!(
        (s.hosts.len(), s.guests.len(), s.clusters.len()),
        (18, 0, 0)
    );
    assert!(
        s.hosts
            .iter()
            .all(|h| h.physical_memory_mib == Some(1536 * 1024) && h.guest_ids.is_empty())
    );
    assert_eq!(s.oeda_version.as_deref(), Some("200728"));
}

#[test]
fn xen_fixtures_are_refused() {
    for name in ["fullrack.xml", "minimal.xml"] {
        let err = parse(name, &fixture(name)).expect_err(name);
        assert!(
            matches!(err.kind, EsXmlErrorKind::Xen { .. }),
            "{name}: {err}"
        );
        let text = err.to_string();
        assert!(text.starts_with(&format!("{name}:")), "{text}");
        assert!(
            text.contains("Xen (OVM)") && text.contains("KVM only"),
            "{text}"
        );
        assert!(err.line().is_some(), "{text}");
    }
}

#[test]
fn libvirt_domain_is_refused_as_wrong_root() {
    let err = parse("kvm_guest.xml", &fixture("kvm_guest.xml")).expect_err("not an es.xml");
    assert!(
        matches!(&err.kind, EsXmlErrorKind::WrongRoot { found, .. } if found == "domain"),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("kvm_guest.xml:1:1: <domain>: the root element is <domain>"),
        "{err}"
    );
    assert!(err.to_string().contains("libvirt domain"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Broken inputs: every error names the file, the line and the offending element or id.

/// A small valid es.xml; each case below breaks one thing in it. Line numbers are on the right.
const BASE: &str = r#"<engineeredSystem oedaversion="250101">
  <machines>
    <machine id="h1">
      <hostName>h1.example.com</hostName>
      <machineType>compute</machineType>
      <osType>LinuxKVM</osType>
      <machine id="g1"/>
    </machine>
    <machine id="h2">
      <hostName>h2.example.com</hostName>
      <osType>LinuxKVM</osType>
    </machine>
    <machine id="g1">
      <hostName>g1.example.com</hostName>
      <networks><network id="n1"/></networks>
      <software><clusters><cluster id="c1"/></clusters></software>
      <edvVolumes><edvVolume id="v1"/></edvVolumes>
      <osType>LinuxKVMGuest</osType>
      <guestCores>8</guestCores>
      <guestMemory>64GB</guestMemory>
    </machine>
  </machines>
  <networks>
    <network id="n1"><networkType>client</networkType><vlanId>101</vlanId></network>
  </networks>
  <software><clusters><cluster id="c1"><clusterName>cl1</clusterName><clusterVips><clusterVip id="vip1"><machines><machine id="g1"/></machines></clusterVip></clusterVips></cluster></clusters></software>
  <storage><edvVolumes><edvVolume id="v1"><edvVolumeName>vol1</edvVolumeName></edvVolume></edvVolumes></storage>
</engineeredSystem>
"#;

fn broken(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "case does not apply: {from:?}");
    BASE.replacen(from, to, 1)
}

fn truncated_before(marker: &str) -> String {
    BASE[..BASE.find(marker).expect("marker")].to_string()
}

#[test]
fn base_document_parses() {
    let s = parse("es.xml", BASE).expect("base is valid");
    assert_eq!((s.hosts.len(), s.guests.len()), (2, 1));
    let g = &s.guests[0];
    assert_eq!(
        (g.host_id.as_str(), g.vcpus, g.memory_mib),
        ("h1", Some(8), Some(65536))
    );
    assert_eq!(
        (
            g.network_ids.as_slice(),
            g.volume_ids.as_slice(),
            g.cluster_ids.as_slice()
        ),
        (
            &["n1".to_string()][..],
            &["v1".to_string()][..],
            &["c1".to_string()][..]
        )
    );
    assert_eq!(s.networks[0].vlan_id, Some(101));
    assert_eq!(s.volumes[0].name.as_deref(), Some("vol1"));
    assert_eq!(s.clusters[0].member_ids, ["g1"]);
    assert_eq!(g.line, 13);
}

#[test]
fn broken_inputs_are_refused_with_location_and_culprit() {
    // (case, input, expected line, fragments the message must contain)
    let cases: Vec<(&str, String, usize, Vec<&str>)> = vec![
        (
            "truncated between elements",
            truncated_before("      <osType>LinuxKVMGuest"),
            18,
            vec!["truncated", "<machine>", "opened at line 13"],
        ),
        (
            "truncated inside a tag",
            truncated_before("Cores>8</guestCores>").replace("<guest", "<gue"),
            19,
            vec!["malformed XML"],
        ),
        (
            "mismatched end tag",
            broken("</guestCores>", "</guestCore>"),
            19,
            vec!["malformed XML", "guestCore"],
        ),
        (
            "dangling host->guest id",
            broken(r#"<machine id="g1"/>"#, r#"<machine id="ghost"/>"#),
            7,
            vec![r#"<machine id="h1">"#, "ghost", "no <machine> has that id"],
        ),
        (
            "guest without parent",
            broken("      <machine id=\"g1\"/>\n", ""),
            12,
            vec![
                r#"<machine id="g1">"#,
                "g1.example.com",
                "listed by no KVM host",
            ],
        ),
        (
            "guest with two parents",
            broken(
                "      <osType>LinuxKVM</osType>\n    </machine>\n    <machine id=\"g1\">",
                "      <osType>LinuxKVM</osType>\n      <machine id=\"g1\"/>\n    </machine>\n    <machine id=\"g1\">",
            ),
            12,
            vec![
                "h1.example.com",
                "h2.example.com",
                "two KVM hosts",
                "g1.example.com",
            ],
        ),
        (
            "guest listed twice by one host",
            broken(
                "      <machine id=\"g1\"/>\n",
                "      <machine id=\"g1\"/>\n      <machine id=\"g1\"/>\n",
            ),
            8,
            vec![r#"<machine id="h1">"#, "g1", "twice"],
        ),
        (
            "host lists a host",
            broken(r#"<machine id="g1"/>"#, r#"<machine id="h2"/>"#),
            7,
            vec![
                r#"<machine id="h1">"#,
                "h2",
                "osType LinuxKVM, not LinuxKVMGuest",
            ],
        ),
        (
            "guest lists a machine",
            broken(
                "      <osType>LinuxKVMGuest</osType>\n",
                "      <osType>LinuxKVMGuest</osType>\n      <machine id=\"h2\"/>\n",
            ),
            19,
            vec![r#"<machine id="g1">"#, "not a KVM host"],
        ),
        (
            "bad guestMemory",
            broken("64GB", "lots"),
            20,
            vec![r#"<machine id="g1">"#, "<guestMemory>", "`lots`"],
        ),
        (
            "guestMemory without unit",
            broken("64GB", "64"),
            20,
            vec!["<guestMemory>", "unit required"],
        ),
        (
            "zero guestMemory",
            broken("64GB", "0GB"),
            20,
            vec!["<guestMemory>", "above zero"],
        ),
        (
            "bad guestCores",
            broken("<guestCores>8<", "<guestCores>eight<"),
            19,
            vec![r#"<machine id="g1">"#, "<guestCores>", "\"eight\""],
        ),
        (
            "zero guestCores",
            broken("<guestCores>8<", "<guestCores>0<"),
            19,
            vec!["<guestCores>", "\"0\""],
        ),
        (
            "bad ImageVersion",
            broken(
                "<guestCores>",
                "<ImageVersion>latest</ImageVersion><guestCores>",
            ),
            19,
            vec!["<ImageVersion>", "\"latest\""],
        ),
        (
            "bad vlanId",
            broken("<vlanId>101<", "<vlanId>abc<"),
            24,
            vec![r#"<network id="n1">"#, "<vlanId>", "\"abc\""],
        ),
        (
            "duplicate machine id",
            broken(r#"<machine id="h2">"#, r#"<machine id="h1">"#),
            9,
            vec![r#"<machine id="h1">"#, "duplicate machine id", "line 3"],
        ),
        (
            "duplicate hostName",
            broken("<hostName>g1.example.com<", "<hostName>h1.example.com<"),
            14,
            vec![
                r#"<machine id="g1">"#,
                "duplicate hostName \"h1.example.com\"",
                "line 3",
            ],
        ),
        (
            "duplicate element",
            broken(
                "<guestCores>8</guestCores>",
                "<guestCores>8</guestCores><guestCores>9</guestCores>",
            ),
            19,
            vec!["<guestCores> appears twice"],
        ),
        (
            "missing hostName",
            broken("      <hostName>h2.example.com</hostName>\n", ""),
            9,
            vec![r#"<machine id="h2">"#, "has no <hostName>"],
        ),
        (
            "missing machine id",
            broken(r#"<machine id="h2">"#, "<machine>"),
            9,
            vec!["<machine>", "has no `id` attribute"],
        ),
        (
            "unknown network",
            broken(r#"<network id="n1"/>"#, r#"<network id="n9"/>"#),
            15,
            vec![r#"<machine id="g1">"#, "network id \"n9\""],
        ),
        (
            "unknown cluster",
            broken(r#"<cluster id="c1"/>"#, r#"<cluster id="c9"/>"#),
            16,
            vec![r#"<machine id="g1">"#, "cluster id \"c9\""],
        ),
        (
            "unknown EDV volume",
            broken(r#"<edvVolume id="v1"/>"#, r#"<edvVolume id="v9"/>"#),
            17,
            vec![r#"<machine id="g1">"#, "EDV volume id \"v9\""],
        ),
        (
            "VIP member that is a host",
            broken(
                r#"<machines><machine id="g1"/></machines>"#,
                r#"<machines><machine id="h1"/></machines>"#,
            ),
            26,
            vec![r#"<cluster id="c1">"#, "h1", "osType LinuxKVM"],
        ),
        (
            "VIP member that is no machine",
            broken(
                r#"<machines><machine id="g1"/></machines>"#,
                r#"<machines><machine id="nobody"/></machines>"#,
            ),
            26,
            vec!["nobody", "is no machine"],
        ),
        (
            "network without type",
            broken("<networkType>client</networkType>", ""),
            24,
            vec![r#"<network id="n1">"#, "<networkType>"],
        ),
        (
            "KVM osType on a storage machine",
            broken("<machineType>compute<", "<machineType>storage<"),
            5,
            vec![r#"<machine id="h1">"#, "machineType storage"],
        ),
        (
            "Xen guest",
            broken("LinuxKVMGuest", "LinuxGuest"),
            18,
            vec![r#"<machine id="g1">"#, "Xen (OVM)"],
        ),
        (
            "no KVM host",
            BASE.replace(
                "<osType>LinuxKVM</osType>",
                "<osType>LinuxPhysical</osType>",
            ),
            1,
            vec!["no KVM host"],
        ),
        (
            "wrong root",
            BASE.replace("engineeredSystem", "cluster"),
            1,
            vec!["<cluster>", "not an OEDA es.xml"],
        ),
        (
            "unknown entity",
            broken("g1.example.com", "g1&bogus;"),
            14,
            vec!["&bogus;"],
        ),
        (
            "element after the root",
            format!("{BASE}<engineeredSystem/>"),
            29,
            vec!["after the end of the root"],
        ),
    ];
    for (case, input, line, fragments) in cases {
        assert_ne!(input, BASE, "{case}: input unchanged");
        let err: EsXmlError = match parse("es.xml", &input) {
            Ok(_) => panic!("{case}: accepted"),
            Err(e) => e,
        };
        let text = err.to_string();
        assert_eq!(err.line(), Some(line), "{case}: {text}");
        assert!(
            text.starts_with(&format!("es.xml:{line}:")),
            "{case}: {text}"
        );
        for fragment in fragments {
            assert!(
                text.contains(fragment),
                "{case}: {fragment:?} missing in: {text}"
            );
        }
    }
}

#[test]
fn empty_input_has_no_root() {
    for input in ["", "   \n", "<?xml version=\"1.0\"?>\n<!-- nothing -->\n"] {
        let err = parse("es.xml", input).unwrap_err();
        assert!(matches!(err.kind, EsXmlErrorKind::NoRoot), "{err}");
    }
}

#[test]
fn guest_without_cores_or_memory_leaves_them_unknown() {
    let input = broken(
        "      <guestCores>8</guestCores>\n      <guestMemory>64GB</guestMemory>\n",
        "      <guestCores/>\n",
    );
    let s = parse("es.xml", &input).expect("cores and memory are optional");
    assert_eq!((s.guests[0].vcpus, s.guests[0].memory_mib), (None, None));
}

#[test]
fn default_image_version_is_unknown() {
    let input = broken(
        "<guestCores>",
        "<ImageVersion>default</ImageVersion><guestCores>",
    );
    assert_eq!(
        parse("es.xml", &input).unwrap().guests[0].image_version,
        None
    );
}

#[test]
fn membership_is_the_union_of_guest_and_vip_records() {
    // Only the VIP lists g1: it is still a member, and its cluster_ids say so.
    let vip_only = broken(
        "      <software><clusters><cluster id=\"c1\"/></clusters></software>\n",
        "",
    );
    let s = parse("es.xml", &vip_only).unwrap();
    assert_eq!(
        (
            s.guests[0].cluster_ids.as_slice(),
            s.clusters[0].member_ids.as_slice()
        ),
        (&["c1".to_string()][..], &["g1".to_string()][..])
    );
    // Only the guest lists the cluster.
    let guest_only = broken(
        r#"<clusterVips><clusterVip id="vip1"><machines><machine id="g1"/></machines></clusterVip></clusterVips>"#,
        "",
    );
    assert_eq!(
        parse("es.xml", &guest_only).unwrap().clusters[0].member_ids,
        ["g1"]
    );
}

#[test]
fn namespaces_prefixes_and_entities_are_read() {
    let namespaced = BASE.replacen(
        "<engineeredSystem ",
        "<engineeredSystem xmlns=\"model\" ",
        1,
    );
    assert_eq!(
        parse("es.xml", &namespaced).unwrap(),
        parse("es.xml", BASE).unwrap()
    );
    let prefixed = BASE
        .replace(
            "<engineeredSystem ",
            "<m:engineeredSystem xmlns:m=\"model\" ",
        )
        .replace("</engineeredSystem>", "</m:engineeredSystem>")
        .replace("<machine ", "<m:machine ")
        .replace("</machine>", "</m:machine>");
    let s = parse("es.xml", &prefixed).unwrap();
    assert_eq!((s.hosts.len(), s.guests[0].host_id.as_str()), (2, "h1"));
    for (written, read) in [
        ("R&amp;D &#x41;", "R&D A"),
        ("A &amp; B", "A & B"),
        ("  x &lt; y  ", "x < y"),
        ("<![CDATA[a<b]]> c", "a<b c"),
        ("a <!-- note --> b", "a  b"),
        ("x <y/> &amp;z", "x  &z"),
        ("p  <![CDATA[q]]>", "p  q"),
        ("one\r\n two", "one\n two"),
    ] {
        let input = broken("<clusterName>cl1<", &format!("<clusterName>{written}<"));
        assert_eq!(
            parse("es.xml", &input).unwrap().clusters[0].name,
            read,
            "{written:?}"
        );
    }
}

#[test]
fn unknown_elements_are_skipped() {
    let input = broken(
        "      <osType>LinuxKVMGuest</osType>\n",
        "      <osType>LinuxKVMGuest</osType>\n      <futureThing a=\"1\"><hostName>not me</hostName></futureThing>\n",
    );
    assert_eq!(
        parse("es.xml", &input).unwrap().guests[0].name,
        "g1.example.com"
    );
}

// ---------------------------------------------------------------------------------------------
// Rewrite: guest moves written back into es.xml

fn mv(guest: &str, from: &str, to: &str) -> GuestMove {
    GuestMove {
        guest_id: guest.into(),
        from_host_id: from.into(),
        to_host_id: to.into(),
    }
}

/// The changed lines between two texts: (tag, line text, line index in its own text).
fn changed_lines(old: &str, new: &str) -> Vec<(ChangeTag, String, usize)> {
    TextDiff::from_lines(old, new)
        .iter_all_changes()
        .filter(|c| c.tag() != ChangeTag::Equal)
        .map(|c| {
            (
                c.tag(),
                c.value().to_string(),
                c.old_index().or(c.new_index()).unwrap_or(usize::MAX),
            )
        })
        .collect()
}

fn line_index(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not found"))
}

#[test]
fn elastic_move_changes_exactly_one_line_out_and_one_in() {
    let original = fixture("elastic_sample.xml");
    let moved = move_guests(&original, &[mv(ELASTIC_G15, ELASTIC_H15, ELASTIC_H16)]).expect("move");
    let reference_line = format!("            <machine id=\"{ELASTIC_G15}\" />\n");
    let changes = changed_lines(&original, &moved);
    let g16_line = line_index(&moved, &format!("<machine id=\"{ELASTIC_G16}\" />"));
    assert_eq!(
        changes,
        [
            (
                ChangeTag::Delete,
                reference_line.clone(),
                line_index(&original, &format!("<machine id=\"{ELASTIC_G15}\" />"))
            ),
            (ChangeTag::Insert, reference_line, g16_line + 1),
        ]
    );
    let s = parse("es.xml", &moved).unwrap();
    assert_eq!(host_of(&s, ELASTIC_G15), ELASTIC_H16);
    assert_eq!(host_of(&s, ELASTIC_G16), ELASTIC_H16);
    assert!(s.hosts[0].guest_ids.is_empty());
    assert_eq!(s.hosts[1].guest_ids, [ELASTIC_G16, ELASTIC_G15]);
    // Moving it back restores the original byte for byte.
    assert_eq!(
        move_guests(&moved, &[mv(ELASTIC_G15, ELASTIC_H16, ELASTIC_H15)]).unwrap(),
        original
    );
}

#[test]
fn elastic_swap_with_namespace() {
    let original = fixture("elastic_sample.xml").replacen(
        "<engineeredSystem ",
        "<engineeredSystem xmlns=\"model\" ",
        1,
    );
    let moves = [
        mv(ELASTIC_G15, ELASTIC_H15, ELASTIC_H16),
        mv(ELASTIC_G16, ELASTIC_H16, ELASTIC_H15),
    ];
    let swapped = move_guests(&original, &moves).unwrap();
    assert!(swapped.contains("<engineeredSystem xmlns=\"model\" "));
    let s = parse("es.xml", &swapped).unwrap();
    assert_eq!(
        (host_of(&s, ELASTIC_G15), host_of(&s, ELASTIC_G16)),
        (ELASTIC_H16, ELASTIC_H15)
    );
    // Same set of lines, only the two reference lines traded places.
    let mut before: Vec<&str> = original.lines().collect();
    let mut after: Vec<&str> = swapped.lines().collect();
    assert_ne!(before, after);
    before.sort_unstable();
    after.sort_unstable();
    assert_eq!(before, after);
}

#[test]
fn ipv6_sample_move_reparses() {
    let original = fixture("ipv6_sample.xml");
    let guest = "iad103716exddu1101.iad103716exd.adminiad1.oraclevcn.com_id";
    let from = "iad103716exdd011.iad103716exd.adminiad1.oraclevcn.com_id";
    let to = "iad103716exdd012.iad103716exd.adminiad1.oraclevcn.com_id";
    let moved = move_guests(&original, &[mv(guest, from, to)]).unwrap();
    assert_eq!(changed_lines(&original, &moved).len(), 2);
    assert_eq!(host_of(&parse("es.xml", &moved).unwrap(), guest), to);
}

#[test]
fn synthetic_moves_keep_every_other_line() {
    let spec = SynthSpec::new(5, 3, 42);
    let original = synthesize(&spec);
    let before = parse("synth.xml", &original).unwrap();
    let guests_of = |h: usize| before.hosts[h].guest_ids.clone();
    let (h0, h1, h4) = (
        &before.hosts[0].id,
        &before.hosts[1].id,
        &before.hosts[4].id,
    );
    let moves = vec![
        mv(&guests_of(0)[0], h0, h4),
        mv(&guests_of(4)[2], h4, h0),
        mv(&guests_of(1)[1], h1, h0),
        mv(&guests_of(0)[2], h0, h1),
    ];
    let moved = move_guests(&original, &moves).unwrap();
    let changes = changed_lines(&original, &moved);
    assert_eq!(
        changes.iter().filter(|c| c.0 == ChangeTag::Delete).count(),
        moves.len()
    );
    assert_eq!(
        changes.iter().filter(|c| c.0 == ChangeTag::Insert).count(),
        moves.len()
    );
    let after = parse("synth.xml", &moved).unwrap();
    for m in &moves {
        assert_eq!(host_of(&after, &m.guest_id), m.to_host_id);
    }
    let untouched: Vec<_> = after
        .guests
        .iter()
        .filter(|g| !moves.iter().any(|m| m.guest_id == g.id))
        .collect();
    assert!(
        untouched
            .iter()
            .all(|g| host_of(&before, &g.id) == g.host_id)
    );
    assert_eq!(after.guests.len(), before.guests.len());
}

#[test]
fn layout_spans_cover_the_guest_references() {
    let text = fixture("elastic_sample.xml");
    let (system, layout) = parse_with_layout("es.xml", &text).unwrap();
    for host in &system.hosts {
        let host_layout = &layout.hosts[&host.id];
        assert!(
            text[host_layout.start_tag.clone()]
                .starts_with(&format!("<machine id=\"{}\">", host.id))
        );
        assert_eq!(
            &text[host_layout.end_tag.clone().expect("end tag")],
            "</machine>"
        );
        let refs: Vec<&str> = host_layout
            .guest_refs
            .iter()
            .map(|r| &text[r.span.clone()])
            .collect();
        let expected: Vec<String> = host
            .guest_ids
            .iter()
            .map(|g| format!("<machine id=\"{g}\" />"))
            .collect();
        assert_eq!(refs, expected);
    }
}

#[test]
fn move_errors_name_the_file_and_guest() {
    let original = fixture("elastic_sample.xml");
    let err = berth::inventory::esxml::move_guests_in(
        "es.xml.orig",
        &original,
        &[mv(ELASTIC_G15, ELASTIC_H16, ELASTIC_H15)],
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("es.xml.orig:228:"), "{text}");
    assert!(
        text.contains(ELASTIC_G15) && text.contains("not on"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// Synthetic files

fn check_synthetic(spec: &SynthSpec) -> EsSystem {
    let s = parse("synth.xml", &synthesize(spec)).unwrap_or_else(|e| panic!("{spec:?}: {e}"));
    let host_of: HashMap<&str, &str> = s
        .guests
        .iter()
        .map(|g| (g.id.as_str(), g.host_id.as_str()))
        .collect();
    let mut used_mib: HashMap<&str, u64> = HashMap::new();
    for g in &s.guests {
        *used_mib.entry(g.host_id.as_str()).or_default() += g.memory_mib.unwrap_or(0);
    }
    let guests = spec.hosts * spec.guests_per_host;
    assert_eq!(s.hosts.len(), spec.hosts);
    assert_eq!(s.guests.len(), guests);
    assert_eq!(
        s.clusters.len(),
        spec.hosts.div_ceil(2) * spec.guests_per_host
    );
    assert_eq!(s.networks.len(), spec.hosts + 2 * guests);
    assert_eq!(s.volumes.len(), guests * spec.volumes_per_guest);
    for host in &s.hosts {
        assert_eq!(host.guest_ids.len(), spec.guests_per_host);
        assert!(host.image_version.is_some());
        let used = used_mib.get(host.id.as_str()).copied().unwrap_or(0);
        assert!(
            host.physical_memory_mib.expect("host memory") >= used,
            "{} is overcommitted",
            host.name
        );
        assert!(
            host.guest_ids
                .iter()
                .all(|g| host_of[g.as_str()] == host.id)
        );
    }
    for g in &s.guests {
        assert!(
            g.vcpus.is_some() && g.memory_mib.is_some() && g.image_version.is_some(),
            "{}",
            g.name
        );
        assert_eq!(g.network_ids.len(), 2);
        assert_eq!(g.volume_ids.len(), spec.volumes_per_guest);
        assert_eq!(g.cluster_ids.len(), 1);
    }
    for c in &s.clusters {
        let hosts: Vec<&str> = c.member_ids.iter().map(|m| host_of[m.as_str()]).collect();
        assert!(
            !hosts.is_empty() && hosts.len() <= 2,
            "{}: {hosts:?}",
            c.name
        );
        assert!(
            hosts.len() < 2 || hosts[0] != hosts[1],
            "{}: both guests on {}",
            c.name,
            hosts[0]
        );
    }
    let backup_vlans = s
        .networks
        .iter()
        .filter(|n| n.network_type == "backup")
        .filter(|n| n.vlan_id.is_some())
        .count();
    assert_eq!(backup_vlans, guests);
    s
}

#[test]
fn synthetic_files_parse_to_the_spec() {
    check_synthetic(&SynthSpec::new(4, 3, 1));
    check_synthetic(&SynthSpec::new(3, 2, 2)); // odd: the last host's guests are one-node clusters
    check_synthetic(&SynthSpec {
        namespace: false,
        volumes_per_guest: 0,
        ..SynthSpec::new(2, 5, 3)
    });
    check_synthetic(&SynthSpec::new(1, 0, 4));
    let s = check_synthetic(&SynthSpec {
        volumes_per_guest: 3,
        ..SynthSpec::new(2, 1, 5)
    });
    let types: Vec<&str> = s
        .volumes
        .iter()
        .filter_map(|v| v.volume_type.as_deref())
        .collect();
    assert_eq!(
        types,
        [
            "GCVVOL", "BASEVOL", "USERVOL", "GCVVOL", "BASEVOL", "USERVOL"
        ]
    );
    assert!(s.volumes.iter().all(|v| v.device_path.as_deref()
        == Some(&format!("/dev/exc/{}", v.name.as_deref().unwrap_or("?"))[..])));
}

/// Explicitly heavy: about 10,000 guests (a 20 MB file), around a second in the unoptimized
/// test profile.
#[test]
fn synthetic_thousand_hosts_parse() {
    let s = check_synthetic(&SynthSpec {
        volumes_per_guest: 1,
        ..SynthSpec::new(1000, 10, 99)
    });
    assert_eq!(s.guests.len(), 10_000);
}

/// The benchmark-sized file: 10,000 hosts, 100,000 guests. Run it in release:
/// `cargo test --release --test esxml_fixtures -- --ignored --nocapture`. It prints timings
/// rather than asserting them (timed assertions are flaky on shared machines).
#[test]
#[ignore = "heavy: builds a ~200 MB file; run in release"]
fn synthetic_ten_thousand_hosts() {
    let spec = SynthSpec::new(10_000, 10, 2024);
    let started = std::time::Instant::now();
    let text = synthesize(&spec);
    let synthesized = started.elapsed();
    let started = std::time::Instant::now();
    let s = parse("synth.xml", &text).expect("parses");
    let parsed = started.elapsed();
    eprintln!(
        "{} MB: synthesize {synthesized:?}, parse {parsed:?}",
        text.len() / 1_000_000
    );
    assert_eq!((s.hosts.len(), s.guests.len()), (10_000, 100_000));
}

#[test]
fn byte_order_mark_is_accepted() {
    let with_bom = format!("\u{feff}{BASE}");
    let s = parse("es.xml", &with_bom).expect("a UTF-8 BOM is allowed");
    assert_eq!(s.guests[0].line, 13);
    let moved = move_guests(&with_bom, &[mv("g1", "h1", "h2")]).unwrap();
    assert!(moved.starts_with('\u{feff}'));
    assert_eq!(host_of(&parse("es.xml", &moved).unwrap(), "g1"), "h2");
}
