//! Shell tooling: `berth completions bash|zsh|fish`, `berth man`, `berth version`, and the
//! hidden `berth __complete hosts|guests` the completion scripts call.
//!
//! The scripts are clap_complete's (every subcommand and flag, from clap's own tree), with one
//! addition per shell: the values of flags that name a guest (`-target`, `-exclude`, `state show
//! GUEST`) or a host (`-drain`, `-evacuate`, `-return-home`) are completed with the names es.xml
//! holds, read by `berth __complete` in the directory being completed for (or `-C DIR`). Only
//! es.xml is read: no libvirt, no SSH, so completing stays instant.

use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory;

use super::args::{Cli, CompleteArgs, CompletionShell, CompletionsArgs, NameKind, VersionArgs};
use super::commands::print;
use super::error::CliError;
use super::exit;

/// The long flags whose value is a guest, and those whose value is a host (by value name).
fn name_flags() -> (BTreeSet<String>, BTreeSet<String>) {
    fn walk(cmd: &clap::Command, guests: &mut BTreeSet<String>, hosts: &mut BTreeSet<String>) {
        for arg in cmd.get_arguments() {
            let (Some(long), Some(names)) = (arg.get_long(), arg.get_value_names()) else {
                continue;
            };
            match names.first().map(|n| n.as_str()) {
                Some("GUEST") => guests.insert(long.to_string()),
                Some("HOST") => hosts.insert(long.to_string()),
                _ => false,
            };
        }
        for sub in cmd.get_subcommands() {
            walk(sub, guests, hosts);
        }
    }
    let (mut guests, mut hosts) = (BTreeSet::new(), BTreeSet::new());
    walk(&Cli::command(), &mut guests, &mut hosts);
    (guests, hosts)
}

/// The completion script for `shell`.
pub fn completion_script(shell: CompletionShell) -> String {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    let generator = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, &mut cmd, "berth", &mut out);
    let script = String::from_utf8_lossy(&out).into_owned();
    let (guests, hosts) = name_flags();
    match shell {
        CompletionShell::Bash => bash(script, &guests, &hosts),
        CompletionShell::Zsh => zsh(script),
        CompletionShell::Fish => fish(script, &guests, &hosts),
    }
}

/// `-target|--target|…` for a bash `case` pattern.
fn bash_pattern(flags: &BTreeSet<String>) -> String {
    flags
        .iter()
        .flat_map(|f| [format!("-{f}"), format!("--{f}")])
        .collect::<Vec<_>>()
        .join("|")
}

fn bash(script: String, guests: &BTreeSet<String>, hosts: &BTreeSet<String>) -> String {
    format!(
        r#"{script}
# Guest and host names, from the es.xml of the configuration (berth __complete).
_berth_names() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" kind="" i
    local -a chdir=()
    for ((i = 1; i < COMP_CWORD - 1; i++)); do
        case "${{COMP_WORDS[i]}}" in
            -C|--chdir|-chdir) chdir=(-C "${{COMP_WORDS[i+1]}}") ;;
        esac
    done
    case "$prev" in
        {guests}) kind=guests ;;
        {hosts}) kind=hosts ;;
        show) [[ " ${{COMP_WORDS[*]}} " == *" state "* ]] && kind=guests ;;
    esac
    if [[ -n $kind ]]; then
        local IFS=$'\n'
        COMPREPLY=($(compgen -W "$(berth "${{chdir[@]}}" __complete "$kind" 2>/dev/null)" -- "$cur"))
        return 0
    fi
    _berth "$@"
}}
complete -F _berth_names -o bashdefault -o default berth
"#,
        guests = bash_pattern(guests),
        hosts = bash_pattern(hosts),
    )
}

fn zsh(script: String) -> String {
    // `words` is the subcommand's own by the time a value is completed (`_arguments -C`
    // shifts it), so `-C DIR` before the subcommand is looked for in the whole line.
    const HELPERS: &str = r#"
# Guest and host names, from the es.xml of the configuration (berth __complete).
_berth_names() {
    local -a chdir names line
    local i
    line=(${(Q)${(z)LBUFFER}})
    for ((i = 1; i < ${#line}; i++)); do
        case ${line[i]} in
            (-C|--chdir|-chdir) chdir=(-C ${line[i+1]}) ;;
            (--chdir=*|-chdir=*) chdir=(-C ${line[i]#*=}) ;;
            (-C?*) chdir=(-C ${line[i]#-C}) ;;
        esac
    done
    names=(${(f)"$(berth $chdir __complete $1 2>/dev/null)"})
    compadd -a names
}
_berth_guests() { _berth_names guests }
_berth_hosts() { _berth_names hosts }
"#;
    let mut body: Vec<String> = Vec::new();
    for line in script.lines() {
        let guest = line.contains(":GUEST:") || line.contains("':guest -- ");
        let host = line.contains(":HOST:");
        let line = if guest {
            line.replace(":_default'", ":_berth_guests'")
        } else if host {
            line.replace(":_default'", ":_berth_hosts'")
        } else {
            line.to_string()
        };
        match zsh_single_dash(&line) {
            Some((double, single)) => {
                body.push(double);
                body.push(single);
            }
            None => body.push(line),
        }
    }
    match body.split_first() {
        Some((first, rest)) => format!("{first}\n{HELPERS}\n{}\n", rest.join("\n")),
        None => String::new(),
    }
}

/// berth takes every long flag with one dash too (`-target`, Terraform's way): for an
/// `_arguments` spec of a long flag (`'(--markdown)*--target=[…]…' \`), the spec itself and its
/// single-dash twin, each excluding both spellings of what the original excluded.
fn zsh_single_dash(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('\'')?;
    let (exclusions, rest) = match rest.strip_prefix('(') {
        Some(inner) => {
            let end = inner.find(')')?;
            (Some(&inner[..end]), &inner[end + 1..])
        }
        None => (None, rest),
    };
    let (star, rest) = match rest.strip_prefix('*') {
        Some(r) => ("*", r),
        None => ("", rest),
    };
    let after_dashes = rest.strip_prefix("--")?;
    let name_len = after_dashes
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(after_dashes.len());
    let (name, tail) = after_dashes.split_at(name_len);
    if name.is_empty() || !(tail.starts_with('[') || tail.starts_with('=')) {
        return None;
    }
    let exclusions = exclusions
        .map(|list| {
            let both: Vec<String> = list
                .split_whitespace()
                .flat_map(|flag| match flag.strip_prefix("--") {
                    Some(long) => vec![flag.to_string(), format!("-{long}")],
                    None => vec![flag.to_string()],
                })
                .collect();
            format!("({})", both.join(" "))
        })
        .unwrap_or_default();
    Some((
        format!("'{exclusions}{star}--{name}{tail}"),
        format!("'{exclusions}{star}-{name}{tail}"),
    ))
}

fn fish(script: String, guests: &BTreeSet<String>, hosts: &BTreeSet<String>) -> String {
    let names_for = |line: &str| {
        let has = |flags: &BTreeSet<String>| {
            flags
                .iter()
                .any(|f| line.contains(&format!(" -l {f} ")) || line.ends_with(&format!(" -l {f}")))
        };
        if has(guests) {
            Some("guests")
        } else if has(hosts) {
            Some("hosts")
        } else {
            None
        }
    };
    let mut out = String::from(
        r#"# Guest and host names, from the es.xml of the configuration (berth __complete).
function __berth_names
    set -l tokens (commandline -opc)
    set -l chdir
    for i in (seq (count $tokens))
        if contains -- $tokens[$i] -C --chdir -chdir; and test $i -lt (count $tokens)
            set chdir -C $tokens[(math $i + 1)]
        else if string match -qr -- '^--?chdir=' $tokens[$i]
            set chdir -C (string replace -r -- '^--?chdir=' '' $tokens[$i])
        end
    end
    berth $chdir __complete $argv 2>/dev/null
end
"#,
    );
    for line in script.lines() {
        out.push_str(&fish_single_dash(line));
        if let Some(kind) = names_for(line) {
            out.push_str(&format!(" -f -a \"(__berth_names {kind})\""));
        }
        out.push('\n');
    }
    out.push_str(
        "complete -c berth -n \"__fish_seen_subcommand_from state; and __fish_seen_subcommand_from show\" \
         -f -a \"(__berth_names guests)\"\n",
    );
    out
}

/// berth takes every long flag with one dash too (`-target`, Terraform's way): `-o NAME`
/// (fish's old-style option) beside each `-l NAME`.
fn fish_single_dash(line: &str) -> String {
    if !line.starts_with("complete -c berth ") {
        return line.to_string();
    }
    // Only among the options, not in the description (`-d '…'`) or the values (`-a "…"`).
    let options_end = [" -d '", " -a \""]
        .iter()
        .filter_map(|m| line.find(m))
        .min()
        .unwrap_or(line.len());
    let Some(at) = line[..options_end].find(" -l ") else {
        return line.to_string();
    };
    let name_start = at + " -l ".len();
    let name_end = line[name_start..]
        .find(' ')
        .map_or(line.len(), |i| name_start + i);
    let name = &line[name_start..name_end];
    format!("{} -o {name}{}", &line[..name_end], &line[name_end..])
}

pub fn completions(args: &CompletionsArgs) -> Result<u8, CliError> {
    print(&completion_script(args.shell))?;
    Ok(exit::OK)
}

/// `berth __complete hosts|guests`: the names in es.xml, sorted. Any problem (no
/// configuration here, es.xml unreadable) prints nothing: a completion must never print errors
/// into the command line being typed.
pub fn complete(args: &CompleteArgs) -> Result<u8, CliError> {
    let Ok(cfg) = crate::config::load_dir(Path::new(".")) else {
        return Ok(exit::ERROR);
    };
    let path = &cfg.inventory.es_xml.value;
    let Ok(text) = crate::text_file::read(path) else {
        return Ok(exit::ERROR);
    };
    let Ok(es) = crate::inventory::esxml::parse(&path.display().to_string(), &text) else {
        return Ok(exit::ERROR);
    };
    let names: BTreeSet<&str> = match args.kind {
        NameKind::Hosts => es.hosts.iter().map(|h| h.name.as_str()).collect(),
        NameKind::Guests => es.guests.iter().map(|g| g.name.as_str()).collect(),
    };
    let mut text: String = names.into_iter().map(|n| format!("{n}\n")).collect();
    if text.is_empty() {
        text.push('\n');
    }
    print(&text)?;
    Ok(exit::OK)
}

/// `berth man`: the manual page, from clap's tree (the same text as `--help`).
pub fn man() -> Result<u8, CliError> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(CliError::Stdout)?;
    print(&String::from_utf8_lossy(&out))?;
    Ok(exit::OK)
}

/// The git commit berth was built from (build.rs), when it was built from a git checkout.
fn git_commit() -> Option<&'static str> {
    Some(env!("BERTH_GIT_COMMIT")).filter(|c| !c.is_empty())
}

pub fn version(args: &VersionArgs) -> Result<u8, CliError> {
    let version = env!("CARGO_PKG_VERSION");
    let commit = git_commit();
    let libvirt = crate::inventory::libvirt::library_version();
    let text = if args.json {
        let value = serde_json::json!({
            "version": version,
            "git_commit": commit,
            "libvirt": libvirt,
        });
        format!(
            "{}\n",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        )
    } else {
        format!(
            "berth {version}{}\nlibvirt {}\n",
            commit.map(|c| format!(" (commit {c})")).unwrap_or_default(),
            libvirt.as_deref().unwrap_or("unknown")
        )
    };
    print(&text)?;
    Ok(exit::OK)
}
