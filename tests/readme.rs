//! The README shows users a configuration and a list of commands: both must be real.

use std::path::Path;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The text of every fenced block of `lang` in `markdown`.
fn blocks(markdown: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    markdown
        .split(&fence)
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_readme_configuration_is_valid_hcl_for_berth() {
    let hcl = blocks(&readme(), "hcl");
    assert!(!hcl.is_empty(), "README.md has no ```hcl block");
    for block in hcl {
        if let Err(e) = berth::config::parse_str("README.md", &block, Path::new("/etc/berth")) {
            panic!(
                "README's HCL does not load:\n{}",
                berth::config::render(&e, false)
            );
        }
    }
}

#[test]
fn every_command_the_readme_lists_is_a_berth_subcommand() {
    let help = assert_cmd::Command::cargo_bin("berth")
        .unwrap()
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let mut seen = 0;
    for block in blocks(&readme(), "sh") {
        for line in block
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("berth "))
        {
            let sub = line.split_whitespace().nth(1).unwrap();
            assert!(
                help.contains(&format!("\n  {sub} ")),
                "README uses `berth {sub}`, which --help does not list"
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 10,
        "expected the README's command list, found {seen} commands"
    );
}
