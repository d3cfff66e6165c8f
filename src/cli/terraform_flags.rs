//! Terraform users type `-out=plan.berth`, `-auto-approve`, `-target=vm01`: single-dash long
//! flags. clap only knows `--out`, so such flags are rewritten before parsing.
//!
//! The long flags are taken from clap's own command tree (every subcommand, global flags,
//! `help` and `version`), so every flag berth has works with one dash, including flags added
//! later. A single-dash word that is neither a long flag nor a cluster of short flags (`-vv`,
//! `-Cdir`) is an unknown flag: clap is given it with two dashes, and its error is reworded to
//! name the flag as it was written (not "unexpected argument '-l'").

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;

/// The flags of a command tree: long names, and short ones with whether they take a value.
#[derive(Debug, Default)]
pub struct Flags {
    long: BTreeSet<String>,
    short: BTreeMap<char, bool>,
}

impl Flags {
    /// Every flag of `cmd` and its subcommands, as clap builds them (with `--help`, `--version`).
    pub fn of(cmd: &clap::Command) -> Flags {
        let mut cmd = cmd.clone();
        cmd.build();
        let mut flags = Flags::default();
        flags.collect(&cmd);
        flags
    }

    fn collect(&mut self, cmd: &clap::Command) {
        for arg in cmd.get_arguments() {
            let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
            if let Some(long) = arg.get_long() {
                self.long.insert(long.to_string());
            }
            for alias in arg.get_all_aliases().unwrap_or_default() {
                self.long.insert(alias.to_string());
            }
            if let Some(short) = arg.get_short() {
                self.short.insert(short, takes_value);
            }
        }
        for sub in cmd.get_subcommands() {
            self.collect(sub);
        }
    }

    /// Whether `body` (a word without its dash) is a cluster of short flags: `vv`, `C`, `Cdir`.
    fn is_short_cluster(&self, body: &str) -> bool {
        for c in body.chars() {
            match self.short.get(&c) {
                Some(true) => return true, // the rest is the flag's value
                Some(false) => {}
                None => return false,
            }
        }
        !body.is_empty()
    }
}

/// The arguments rewritten for clap, and the single-dash words given to it with two dashes
/// (for [`reword_error`]).
pub struct Normalized {
    pub args: Vec<OsString>,
    pub rewritten: Vec<String>,
}

/// Rewrites `-name` / `-name=value` to `--name` / `--name=value` when `name` is a long flag of
/// `flags`, and an unknown single-dash word to two dashes; leaves short flags (`-C dir`, `-vv`),
/// values and everything after `--` alone.
pub fn normalize(args: impl IntoIterator<Item = OsString>, flags: &Flags) -> Normalized {
    let mut out = Normalized {
        args: Vec::new(),
        rewritten: Vec::new(),
    };
    let mut passthrough = false;
    for (i, arg) in args.into_iter().enumerate() {
        if passthrough || i == 0 {
            out.args.push(arg);
            continue;
        }
        let rewritten = arg.to_str().and_then(|s| {
            if s == "--" {
                passthrough = true;
                return None;
            }
            let body = s.strip_prefix('-').filter(|b| !b.starts_with('-'))?;
            let name = body.split('=').next().unwrap_or(body);
            if flags.long.contains(name) {
                out.rewritten.push(s.to_string());
                return Some(OsString::from(format!("-{s}")));
            }
            // A word like `-lol` (not `-vv`, not a negative number): name it as written.
            let word = name.chars().count() > 1
                && !flags.is_short_cluster(body)
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if word {
                out.rewritten.push(s.to_string());
                return Some(OsString::from(format!("-{s}")));
            }
            None
        });
        out.args.push(rewritten.unwrap_or(arg));
    }
    out
}

/// clap's message about `--lol` names it `-lol` when that is how the user wrote it.
pub fn reword_error(rendered: String, rewritten: &[String]) -> String {
    rewritten.iter().fold(rendered, |text, word| {
        let name = word.split('=').next().unwrap_or(word);
        text.replace(&format!("'-{name}'"), &format!("'{name}'"))
            .replace(&format!("'-{word}'"), &format!("'{word}'"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn norm(args: &[&str]) -> Vec<String> {
        let flags = Flags::of(&crate::cli::Cli::command());
        normalize(args.iter().map(OsString::from), &flags)
            .args
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn rewrites_every_long_flag_of_the_command_tree() {
        assert_eq!(
            norm(&[
                "berth",
                "plan",
                "-out=p.berth",
                "-json",
                "-C",
                "dir",
                "--markdown",
                "-lock=false"
            ]),
            [
                "berth",
                "plan",
                "--out=p.berth",
                "--json",
                "-C",
                "dir",
                "--markdown",
                "--lock=false"
            ]
        );
        // simulate's flags, which the hand-kept list missed.
        assert_eq!(
            norm(&[
                "berth",
                "simulate",
                "-max-inbound=2",
                "-link-bandwidth",
                "900"
            ]),
            [
                "berth",
                "simulate",
                "--max-inbound=2",
                "--link-bandwidth",
                "900"
            ]
        );
        // Short flags, clusters and values stay; everything after `--` too.
        assert_eq!(
            norm(&["berth", "-vv", "-Cdir", "-x", "--", "-out"]),
            ["berth", "-vv", "-Cdir", "-x", "--", "-out"]
        );
    }

    #[test]
    fn an_unknown_word_is_passed_with_two_dashes_and_reworded_back() {
        let flags = Flags::of(&crate::cli::Cli::command());
        let n = normalize(
            ["berth", "plan", "-lol=3"].into_iter().map(OsString::from),
            &flags,
        );
        assert_eq!(n.args[2], "--lol=3");
        assert_eq!(n.rewritten, ["-lol=3"]);
        assert_eq!(
            reword_error(
                "error: unexpected argument '--lol' found".into(),
                &n.rewritten
            ),
            "error: unexpected argument '-lol' found"
        );
    }
}
