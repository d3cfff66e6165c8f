//! Terraform users type `-out=plan.berth`, `-auto-approve`, `-target=vm01`: single-dash long
//! flags. clap only knows `--out`, so such flags are rewritten before parsing.

use std::ffi::OsString;

/// Long flags that may be written with one dash.
const SINGLE_DASH: &[&str] = &[
    "out",
    "json",
    "markdown",
    "detailed-exitcode",
    "lock",
    "lock-timeout",
    "no-color",
    "chdir",
    "auto-approve",
    "target",
    "parallelism",
    "keep-going",
    "step",
    "drain",
    "evacuate",
    "return-home",
    "rebalance",
    "replan",
    "help",
    "version",
];

/// Rewrites `-name` / `-name=value` to `--name` / `--name=value` for the flags above; leaves
/// everything else alone (short flags like `-C`, values, and anything after `--`).
pub fn normalize(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for arg in args {
        if passthrough {
            out.push(arg);
            continue;
        }
        let rewritten = arg.to_str().and_then(|s| {
            if s == "--" {
                passthrough = true;
                return None;
            }
            let body = s.strip_prefix('-').filter(|b| !b.starts_with('-'))?;
            let name = body.split('=').next().unwrap_or(body);
            SINGLE_DASH
                .contains(&name)
                .then(|| OsString::from(format!("-{s}")))
        });
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn rewrites_terraform_style_flags_only() {
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
        assert_eq!(
            norm(&["berth", "apply", "-target", "vm01"]),
            ["berth", "apply", "--target", "vm01"]
        );
        assert_eq!(
            norm(&[
                "berth",
                "plan",
                "-drain",
                "adm01",
                "-evacuate=adm04",
                "-return-home",
                "adm02",
                "-rebalance"
            ]),
            [
                "berth",
                "plan",
                "--drain",
                "adm01",
                "--evacuate=adm04",
                "--return-home",
                "adm02",
                "--rebalance"
            ]
        );
        // Unknown single-dash words and everything after `--` stay as they are.
        assert_eq!(
            norm(&["berth", "-x", "--", "-out"]),
            ["berth", "-x", "--", "-out"]
        );
    }
}
