//! A host command run at most once per start: the guard that lets an apply killed between
//! journaling HOST_COMMAND as started and the command's start tell, when it resumes, whether
//! the command ever began.
//!
//! berth journals a fresh marker name with the step's start, then runs the operator's
//! command through a fixed `sh` script that first creates the marker directory in
//! [`ONCE_MARKER_DIR`] (`mkdir` is atomic: of two runs with one marker only one goes on) and
//! then `exec`s the command. An apply that resumes runs the script again with the journaled
//! marker: if the marker is there, the command started before and is not run again; if the
//! host's boot id is no longer the one journaled, the host rebooted since (the marker, on a
//! tmpfs, went with it) and the command is not run again either; otherwise it never began, and
//! runs now. The operator's command and the marker are the script's arguments (`$@`), never
//! part of its text.

use super::{RemoteError, RemoteHost};

/// Where the markers live: a tmpfs every Linux host has, writable by every user and sticky
/// (no one removes another's marker), emptied at every boot.
pub const ONCE_MARKER_DIR: &str = "/dev/shm";

/// What the script writes on standard error, before its exit status [`GUARD_EXIT`], when it
/// does not run the command; a command of the operator's would have to print the same line
/// and exit with the same status to be taken for it.
const SAID_STARTED: &str = "berth-once: started before";
const SAID_REBOOTED: &str = "berth-once: rebooted since";
const GUARD_EXIT: i32 = 75;

/// `$1` the marker's name, `$2` the boot id journaled with the start (empty: not checked), the
/// rest the operator's command.
const SCRIPT: &str = r#"marker=$1 boot=$2
shift 2
if [ -n "$boot" ] && [ "$(cat /proc/sys/kernel/random/boot_id)" != "$boot" ]; then
  echo "berth-once: rebooted since" >&2; exit 75
fi
if ! mkdir "/dev/shm/$marker" 2>/dev/null; then
  if [ -d "/dev/shm/$marker" ]; then echo "berth-once: started before" >&2; exit 75; fi
  echo "berth-once: cannot create the marker /dev/shm/$marker" >&2; exit 75
fi
exec "$@""#;

/// A new marker name, unique to one start of one host command.
pub fn new_once_marker() -> String {
    format!("berth-once-{}", uuid::Uuid::new_v4().simple())
}

/// What became of a command run through the guard.
#[derive(Debug)]
pub enum OnceOutcome {
    /// It ran now and exited with status 0.
    Ran,
    /// A run with the same marker had started it in this boot: not run again.
    StartedBefore,
    /// The host's boot id is not the one given: it rebooted since; not run.
    RebootedSince,
}

/// A marker is a plain file name berth made ([`new_once_marker`]); one read back from a state
/// file is checked again, so that it can never name a path outside [`ONCE_MARKER_DIR`].
fn check_marker(host: &str, marker: &str) -> Result<(), RemoteError> {
    let plain = !marker.is_empty()
        && !marker.starts_with(['.', '-'])
        && marker
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if plain {
        Ok(())
    } else {
        Err(RemoteError::Failed {
            host: host.to_string(),
            command: "the host command's start marker".into(),
            status: "refused".into(),
            stderr: format!("`{marker}` is not a plain name"),
        })
    }
}

impl RemoteHost {
    /// Runs `argv` unless a run with `marker` started it already in this boot, or the host's
    /// boot id is no longer `boot_id` (see the module's doc). A status other than 0 (the
    /// command's, or the guard's when it cannot make the marker) is a [`RemoteError::Failed`]
    /// naming the operator's command.
    pub async fn run_once(
        &self,
        marker: &str,
        boot_id: Option<&str>,
        argv: &[String],
    ) -> Result<OnceOutcome, RemoteError> {
        check_marker(&self.destination, marker)?;
        if argv.is_empty() {
            return Err(RemoteError::EmptyCommand {
                host: self.destination.clone(),
            });
        }
        let mut wrapped: Vec<String> = ["sh", "-c", SCRIPT, "berth-once", marker]
            .into_iter()
            .map(String::from)
            .collect();
        wrapped.push(boot_id.unwrap_or_default().to_string());
        wrapped.extend(argv.iter().cloned());
        let out = self.run_shown(&wrapped, argv).await?;
        if out.status.success() {
            return Ok(OnceOutcome::Ran);
        }
        if out.status.code() == Some(GUARD_EXIT) {
            let said = String::from_utf8_lossy(&out.stderr);
            match said.lines().last().unwrap_or_default().trim() {
                SAID_STARTED => return Ok(OnceOutcome::StartedBefore),
                SAID_REBOOTED => return Ok(OnceOutcome::RebootedSince),
                _ => {}
            }
        }
        Err(self.failure(argv, &out))
    }

    /// Whether the guard can make its markers here: [`ONCE_MARKER_DIR`] is a directory the
    /// SSH user may write (for root too, not on a read-only mount).
    pub async fn once_guard_ready(&self) -> Result<bool, RemoteError> {
        let argv = ["test", "-d", ONCE_MARKER_DIR, "-a", "-w", ONCE_MARKER_DIR].map(String::from);
        self.check(&argv).await
    }

    /// Removes the marker of a command whose step is journaled as done (it is no longer
    /// needed); a marker a reboot removed already is no error.
    pub async fn forget_once_marker(&self, marker: &str) -> Result<(), RemoteError> {
        check_marker(&self.destination, marker)?;
        let path = format!("{ONCE_MARKER_DIR}/{marker}");
        self.run(&["rmdir".to_string(), "--".to_string(), path])
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::process::Output;

    use super::super::BOOT_ID_PATH;
    use super::*;

    #[test]
    fn markers_berth_makes_are_plain_and_differ() {
        let (a, b) = (new_once_marker(), new_once_marker());
        assert_ne!(a, b);
        assert!(check_marker("h", &a).is_ok());
    }

    #[test]
    fn a_marker_that_could_name_another_path_is_refused() {
        for bad in ["", "../etc", "a/b", ".hidden", "-rf", "x y", "a\nb", "é"] {
            assert!(check_marker("h", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_script_checks_the_boot_id_before_it_makes_the_marker() {
        let boot = SCRIPT.find("boot_id").unwrap();
        let mkdir = SCRIPT.find("mkdir").unwrap();
        let exec = SCRIPT.find("exec \"$@\"").unwrap();
        assert!(boot < mkdir && mkdir < exec);
        for said in [
            SAID_STARTED,
            SAID_REBOOTED,
            "berth-once: cannot create the marker",
        ] {
            assert!(SCRIPT.contains(said), "{said}");
        }
        assert!(SCRIPT.contains(&format!("exit {GUARD_EXIT}")));
        // The script spells out the paths the rest of berth names by these constants.
        assert!(SCRIPT.contains(BOOT_ID_PATH) && SCRIPT.contains(ONCE_MARKER_DIR));
    }

    /// The script itself, run here by `sh` as sshd would run it on a host: the command runs
    /// once per marker, never after a reboot, and its own status comes back untouched.
    #[test]
    fn the_script_runs_a_command_once_per_marker_and_never_after_a_reboot() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ran");
        let marker = new_once_marker();
        let boot = std::fs::read_to_string(BOOT_ID_PATH).unwrap();
        let run = |boot: &str, status: &str| {
            std::process::Command::new("sh")
                .args(["-c", SCRIPT, "berth-once", &marker, boot])
                .args(["sh", "-c", "echo ran >> \"$0\"; exit \"$1\""])
                .arg(&log)
                .arg(status)
                .output()
                .unwrap()
        };
        let said = |o: &Output| String::from_utf8_lossy(&o.stderr).trim().to_string();
        let other_boot = run("00000000-0000-4000-8000-000000000000", "0");
        assert_eq!(other_boot.status.code(), Some(GUARD_EXIT));
        assert_eq!(said(&other_boot), SAID_REBOOTED);
        assert!(!log.exists(), "not run after a reboot");
        let first = run(boot.trim(), "3");
        assert_eq!(first.status.code(), Some(3), "the command's own status");
        let again = run(boot.trim(), "0");
        assert_eq!(again.status.code(), Some(GUARD_EXIT));
        assert_eq!(said(&again), SAID_STARTED);
        let unchecked = run("", "0");
        assert_eq!(
            said(&unchecked),
            SAID_STARTED,
            "no boot id: the marker still holds"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "ran\n", "ran once");
        std::fs::remove_dir(format!("{ONCE_MARKER_DIR}/{marker}")).unwrap();
    }

    /// The command's arguments reach it verbatim through the guard: the script never
    /// evaluates them (sshd's login shell gets each quoted, as for every remote command).
    #[test]
    fn hostile_arguments_pass_through_the_script_verbatim() {
        let marker = new_once_marker();
        let hostile = [
            "$(touch /tmp/berth-pwned)",
            "; rm -rf /",
            "'\"`",
            "a b\nc",
            "-n",
            "*",
        ];
        let out = std::process::Command::new("sh")
            .args(["-c", SCRIPT, "berth-once", &marker, ""])
            .args(["printf", "%s\\0"])
            .args(hostile)
            .output()
            .unwrap();
        std::fs::remove_dir(format!("{ONCE_MARKER_DIR}/{marker}")).unwrap();
        assert!(out.status.success(), "{out:?}");
        let got: Vec<&str> = std::str::from_utf8(&out.stdout)
            .unwrap()
            .split_terminator('\0')
            .collect();
        assert_eq!(got, hostile);
    }
}
