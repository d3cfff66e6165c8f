//! Shell tooling through the real binary: completion scripts (loaded in real bash, zsh and
//! fish, which complete a command line the way they would at a prompt), the man page, `berth
//! version`, and the names `berth __complete` offers.

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

/// `PATH` with the berth under test first (the scripts call `berth __complete`).
fn path_with_berth() -> String {
    format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Whether `shell` can be run. A missing one skips its test, saying why, except under CI
/// (`CI=true`, as tests/run.sh runs), where tests/install-deps.sh must have installed it.
fn shell_present(shell: &str) -> bool {
    let found = Command::new(shell)
        .args(["-c", "exit 0"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{shell} is not installed, and CI=true does not skip: run tests/install-deps.sh as root"
        );
        eprintln!("skipped: {shell} is not installed (tests/install-deps.sh installs it)");
    }
    found
}

fn candidates(out: &std::process::Output, shell: &str) -> Vec<String> {
    assert!(
        out.status.success(),
        "{shell} exited with {:?} (124: timed out):\n{}\n{}",
        out.status.code(),
        stdout(out),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found: Vec<String> = match shell {
        // `complete -C` prints `candidate<TAB>description` lines.
        "fish" => stdout(out)
            .lines()
            .filter_map(|l| l.split('\t').next())
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect(),
        // The capture hook prints each candidate on a line of its own after `<cand>`.
        _ => stdout(out)
            .lines()
            .filter_map(|l| l.trim_end_matches('\r').strip_prefix("<cand>"))
            .map(String::from)
            .collect(),
    };
    found.sort();
    found.dedup();
    found
}

/// Loads `berth completions fish` in fish and completes `line` (as typed up to the cursor)
/// in `dir` with `complete -C`.
fn fish_complete(dir: &Path, line: &str) -> Vec<String> {
    let script = stdout(&berth(Path::new("."), &["completions", "fish"]));
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("berth.fish");
    std::fs::write(&file, script).unwrap();
    let out = Command::new("timeout")
        .args(["60", "fish", "--no-config", "-c"])
        .arg("source $argv[1]; and complete -C $argv[2]")
        .arg(&file)
        .arg(line)
        .current_dir(dir)
        .env("PATH", path_with_berth())
        .output()
        .unwrap();
    candidates(&out, "fish")
}

/// Sets up an interactive zsh for [`zsh_complete`]: the completion system, `berth completions
/// zsh`, TAB bound to complete, and a `compadd` that also prints every candidate it adds
/// (after `<cand>`, on a line of its own); the shell exits once the completion is over.
const ZSH_INIT: &str = r#"
PS1='' PROMPT='' RPROMPT=''
autoload -U compinit && compinit -u -D
source ${BERTH_SCRIPT:?}
bindkey '^I' complete-word
zstyle ':completion:*' insert-tab false
compadd() {
    # Calls that only ask which words match (-O, -A, -D) add nothing: pass them through.
    if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then
        builtin compadd "$@"
        return
    fi
    local -a __hits
    builtin compadd -A __hits "$@"
    local hit
    for hit in $__hits; do print -r -- $'
'"<cand>$IPREFIX$hit"; done
}
_berth_capture_done() { print -r -- $'
<done>'; exit }
comppostfuncs=(_berth_capture_done)
print -r -- '<ready>'
"#;

/// Types the line in `$2` and TAB into an interactive zsh on a pseudo-terminal (zsh/zpty)
/// set up by the file in `$1`, and prints what it printed until it exited.
const ZSH_DRIVE: &str = r#"
zmodload zsh/zpty || exit 3
zpty capture zsh -f -i
zpty -w capture "source ${(q)1}"
zpty -r capture line '*<ready>*' || exit 4
zpty -w -n capture "$2"$'	'
local out chunk
while zpty -r capture chunk; do out+=$chunk; done
print -r -- $out
"#;

/// Loads `berth completions zsh` in an interactive zsh and completes `line` in `dir` with TAB.
fn zsh_complete(dir: &Path, line: &str) -> Vec<String> {
    let script = stdout(&berth(Path::new("."), &["completions", "zsh"]));
    let tmp = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("_berth", script.as_str()),
        ("init.zsh", ZSH_INIT),
        ("drive.zsh", ZSH_DRIVE),
    ] {
        std::fs::write(tmp.path().join(name), text).unwrap();
    }
    let out = Command::new("timeout")
        .args(["60", "zsh", "-f"])
        .arg(tmp.path().join("drive.zsh"))
        .arg(tmp.path().join("init.zsh"))
        .arg(line)
        .current_dir(dir)
        .env("PATH", path_with_berth())
        .env("BERTH_SCRIPT", tmp.path().join("_berth"))
        .env("TERM", "dumb")
        .output()
        .unwrap();
    candidates(&out, "zsh")
}

/// What every shell must complete, by the example drain-host configuration.
fn check_shell(shell: &str, complete: fn(&Path, &str) -> Vec<String>) {
    let example = example("drain-host");
    let dir = example.to_str().unwrap();
    let elsewhere = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guests = [
        "exa01adm01vm01.example.com",
        "exa01adm01vm02.example.com",
        "exa01adm01vm03.example.com",
        "exa01adm02vm01.example.com",
        "exa01adm03vm01.example.com",
    ];
    let hosts = [
        "exa01adm01.example.com",
        "exa01adm02.example.com",
        "exa01adm03.example.com",
    ];
    // Subcommands and flags (both spellings: berth takes `-target` as `--target`).
    let c = complete(elsewhere, "berth comp");
    assert!(c.contains(&"completions".to_string()), "{shell}: {c:?}");
    let c = complete(elsewhere, "berth plan --ex");
    assert!(c.contains(&"--exclude".to_string()), "{shell}: {c:?}");
    let c = complete(elsewhere, "berth apply -auto-a");
    assert_eq!(c, ["-auto-approve"], "{shell}");
    // Guest and host names from the configuration: of `-C DIR`, or of the directory.
    for flag in ["-target", "--target", "-exclude"] {
        let line = format!("berth -C {dir} apply {flag} ");
        assert_eq!(complete(elsewhere, &line), guests, "{shell}: {line}");
    }
    assert_eq!(
        complete(
            elsewhere,
            &format!("berth -C {dir} apply -target exa01adm01")
        ),
        guests[..3],
        "{shell}"
    );
    assert_eq!(
        complete(&example, "berth plan --drain "),
        hosts,
        "{shell}: in the configuration's directory"
    );
    assert_eq!(
        complete(
            elsewhere,
            &format!("berth -C {dir} plan -evacuate exa01adm0")
        ),
        hosts,
        "{shell}"
    );
    for chdir in [format!("-C {dir}"), format!("--chdir={dir}")] {
        assert_eq!(
            complete(elsewhere, &format!("berth {chdir} state show exa01adm02")),
            ["exa01adm02vm01.example.com"],
            "{shell}: {chdir}"
        );
    }
    // Outside any configuration there are no names to offer (and no error in the line).
    assert_eq!(
        complete(elsewhere, "berth apply -target "),
        Vec::<String>::new(),
        "{shell}"
    );
}

#[test]
fn fish_completes_subcommands_flags_guests_and_hosts() {
    if shell_present("fish") {
        check_shell("fish", fish_complete);
    }
}

#[test]
fn zsh_completes_subcommands_flags_guests_and_hosts() {
    if shell_present("zsh") {
        check_shell("zsh", zsh_complete);
    }
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
