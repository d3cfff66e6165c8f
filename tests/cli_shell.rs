//! Shell tooling through the real binary: completion scripts (run in a real bash), the man
//! page, `berth version`, and the names `berth __complete` offers.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "common/cli.rs"]
mod cli;
use cli::{berth, example};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_berth"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Sources `berth completions bash` in bash, completes `words` (the last one being typed) and
/// returns the candidates.
fn bash_complete(words: &[&str]) -> Vec<String> {
    let script = stdout(&berth(Path::new("."), &["completions", "bash"]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berth.bash");
    std::fs::write(&file, script).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\n_berth_names berth\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        file.display(),
        quoted.join(" "),
        words.len() - 1
    );
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(program)
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = stdout(&out)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    names.sort();
    names
}

#[test]
fn bash_completes_guests_hosts_and_subcommands() {
    let dir = example("drain-host");
    let dir = dir.to_str().unwrap();
    assert_eq!(
        bash_complete(&["berth", "-C", dir, "apply", "-target", "exa01adm01vm0"]),
        [
            "exa01adm01vm01.example.com",
            "exa01adm01vm02.example.com",
            "exa01adm01vm03.example.com"
        ]
    );
    assert_eq!(
        bash_complete(&["berth", "-C", dir, "plan", "--drain", ""]),
        [
            "exa01adm01.example.com",
            "exa01adm02.example.com",
            "exa01adm03.example.com"
        ]
    );
    assert_eq!(
        bash_complete(&["berth", "-C", dir, "state", "show", "exa01adm02"]),
        ["exa01adm02vm01.example.com"]
    );
    // Everything else is clap_complete's: subcommands and flags.
    assert!(bash_complete(&["berth", "comp"]).contains(&"completions".to_string()));
    assert!(bash_complete(&["berth", "plan", "--ex"]).contains(&"--exclude".to_string()));
}

#[test]
fn zsh_and_fish_complete_every_guest_and_host_flag_from_the_configuration() {
    let zsh = stdout(&berth(Path::new("."), &["completions", "zsh"]));
    assert!(zsh.starts_with("#compdef berth\n"), "{zsh}");
    assert!(zsh.contains("__complete $1"));
    assert!(zsh.contains("'*--target=[") && zsh.contains(":GUEST:_berth_guests'"));
    assert!(zsh.contains(":HOST:_berth_hosts'"));
    assert!(!zsh.contains(":GUEST:_default") && !zsh.contains(":HOST:_default"));

    let fish = stdout(&berth(Path::new("."), &["completions", "fish"]));
    let lines = |flag: &str| -> Vec<String> {
        fish.lines()
            .filter(|l| l.contains(&format!(" -l {flag} ")))
            .map(String::from)
            .collect()
    };
    for (flag, kind) in [
        ("target", "guests"),
        ("exclude", "guests"),
        ("drain", "hosts"),
        ("return-home", "hosts"),
    ] {
        let found = lines(flag);
        assert!(!found.is_empty(), "no fish line for --{flag}");
        for line in found {
            assert!(
                line.ends_with(&format!("(__berth_names {kind})\"")),
                "{line}"
            );
        }
    }
    let bad = berth(Path::new("."), &["completions", "powershell"]);
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn complete_prints_nothing_outside_a_configuration() {
    let empty = tempfile::tempdir().unwrap();
    let out = berth(empty.path(), &["__complete", "guests"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[test]
fn man_page_documents_the_commands() {
    let out = berth(Path::new("."), &["man"]);
    assert_eq!(out.status.code(), Some(0));
    let page = stdout(&out);
    assert!(page.contains(".TH berth 1"), "{page}");
    for word in ["plan", "apply", "completions", "version", "verbose"] {
        assert!(page.contains(word), "{word} missing from the man page");
    }
    assert!(
        !page.contains("__complete"),
        "the hidden subcommand stays hidden"
    );
}

#[test]
fn version_names_berth_the_commit_and_libvirt() {
    let v = virt::connect::Connect::version().unwrap();
    let libvirt = format!("{}.{}.{}", v / 1_000_000, (v / 1000) % 1000, v % 1000);
    let out = berth(Path::new("."), &["version", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["libvirt"], libvirt.as_str());
    // Built from a git checkout here: the commit is HEAD's (or null without git).
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        Some(head) => assert_eq!(json["git_commit"], head.as_str()),
        None => assert!(json["git_commit"].is_null()),
    }
    let text = stdout(&berth(Path::new("."), &["version"]));
    assert!(
        text.starts_with(&format!("berth {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains(&format!("libvirt {libvirt}")), "{text}");
}
