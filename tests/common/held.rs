//! A real `berth apply` held mid-apply, holding the state lock, so that tests can kill it.
//!
//! es.xml is swapped for a FIFO that is fed exactly once: berth reads es.xml to open its
//! session, takes the state lock, and then blocks on its next read of es.xml (reading the
//! inventory), lock held, until it is killed. No sleeps race real work: the test waits for a
//! condition (the lock names the child) with a deadline.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A berth child blocked after taking the lock.
pub struct Held {
    pub child: Child,
    es_xml: PathBuf,
    text: String,
}

impl Held {
    /// Puts es.xml back (so that the next berth reads a file, not the FIFO), then kills the
    /// child with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill_9(mut self) {
        restore(&self.es_xml, &self.text);
        let status = Command::new("kill")
            .args(["-9", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&exit),
            Some(9)
        );
    }
}

fn restore(es_xml: &Path, text: &str) {
    std::fs::remove_file(es_xml).unwrap();
    std::fs::write(es_xml, text).unwrap();
}

/// Starts `berth -C dir apply -auto-approve ARGS` (with `env`) and returns once `holds(pid)`
/// says the child holds the state lock.
pub fn apply_holding_lock(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    holds: impl Fn(u32) -> bool,
) -> Held {
    let es_xml = dir.join("es.xml");
    let text = std::fs::read_to_string(&es_xml).unwrap();
    std::fs::remove_file(&es_xml).unwrap();
    let made = Command::new("mkfifo").arg(&es_xml).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("berth"));
    cmd.arg("-C")
        .arg(dir)
        .args(["apply", "-auto-approve"])
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // Feed the first read (opening the FIFO for writing waits for berth to open it).
    let feeder = {
        let (path, text) = (es_xml.clone(), text.clone());
        std::thread::spawn(move || std::fs::write(path, text))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !holds(child.id()) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("berth ended ({status}) before it held the lock");
        }
        assert!(
            Instant::now() < deadline,
            "berth did not take the lock within a minute"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    feeder.join().unwrap().unwrap();
    Held {
        child,
        es_xml,
        text,
    }
}
