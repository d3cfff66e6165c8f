//! The SSH edge against a private sshd on 127.0.0.1 (random port, throw-away host and client
//! keys). Needs `sshd` (openssh-server) and `ssh` (openssh-client) installed.

use std::path::Path;

use berth::remote::{RemoteError, RemoteHost, SshTarget};

#[path = "common/sshd.rs"]
mod sshd;
use sshd::{Sshd, keygen, local_bridges};

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn remote_commands_get_hostile_arguments_verbatim_and_facts_parse() {
    let sshd = Sshd::start();
    let host = RemoteHost::connect(&sshd.target(sshd.known_hosts()))
        .await
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));

    let marker = sshd.path("pwned");
    let injection = format!("$(touch {})", marker.display());
    let hostile = [
        "a b",
        "it's",
        injection.as_str(),
        ";echo x",
        "*",
        "`id`",
        "x\ny",
        "",
    ];
    let mut argv = strings(&["printf", "[%s]\\n"]);
    argv.extend(strings(&hostile));
    let out = host.run(&argv).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let expected: String = hostile.iter().map(|a| format!("[{a}]\n")).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    assert!(
        !marker.exists(),
        "a command substitution was executed on the remote side"
    );

    // run() hands back failing exit codes; run_checked() turns them into errors with stderr.
    let out = host
        .run(&strings(&["sh", "-c", "echo oops >&2; exit 3"]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = host
        .run_checked(&strings(&["ls", "/nonexistent berth dir"]))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, RemoteError::Failed { .. }) && text.contains("'/nonexistent berth dir'"),
        "{text}"
    );
    assert!(
        text.contains("No such file"),
        "stderr is part of the message: {text}"
    );

    assert_eq!(host.bridges().await.unwrap(), local_bridges());
    // Nothing is sent for a name that is not an interface name.
    let err = host.create_bridge("br0;reboot").await.unwrap_err();
    assert!(
        matches!(err, RemoteError::InvalidBridgeName { .. }),
        "{err}"
    );
    if !Path::new("/usr/local/bin/imageinfo").exists() && !Path::new("/usr/bin/imageinfo").exists()
    {
        assert_eq!(host.image_version().await.unwrap(), None);
    }
    host.close().await.unwrap();
}

#[tokio::test]
async fn strict_checking_refuses_an_unknown_host_key_and_says_why() {
    let sshd = Sshd::start();
    let empty = sshd.path("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let err = RemoteHost::connect(&sshd.target(empty.clone()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RemoteError::Connect { .. }), "{text}");
    assert!(
        text.contains("Host key verification failed"),
        "ssh's own reason is shown: {text}"
    );
    assert_eq!(
        std::fs::read_to_string(&empty).unwrap(),
        "",
        "nothing was recorded"
    );

    // Switched off explicitly, the unknown key is accepted and recorded.
    let lenient = SshTarget {
        strict_host_key_checking: false,
        ..sshd.target(empty.clone())
    };
    let host = RemoteHost::connect(&lenient)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    host.close().await.unwrap();
    assert!(
        !std::fs::read_to_string(&empty).unwrap().is_empty(),
        "the key was recorded"
    );
}

#[tokio::test]
async fn strict_checking_refuses_a_changed_host_key() {
    let sshd = Sshd::start();
    keygen(&sshd.path("other_key"));
    let other = std::fs::read_to_string(sshd.path("other_key.pub")).unwrap();
    let wrong = sshd.path("wrong_known_hosts");
    let mut fields = other.split_whitespace();
    let line = format!(
        "[127.0.0.1]:{} {} {}\n",
        sshd.port,
        fields.next().unwrap(),
        fields.next().unwrap()
    );
    std::fs::write(&wrong, line).unwrap();
    for strict in [true, false] {
        let t = SshTarget {
            strict_host_key_checking: strict,
            ..sshd.target(wrong.clone())
        };
        let err = RemoteHost::connect(&t).await.unwrap_err();
        assert!(
            err.to_string().contains("Host key verification failed"),
            "strict={strict}: {err}"
        );
    }
}

#[tokio::test]
async fn extra_options_reach_ssh() {
    let sshd = Sshd::start();
    // A valid option connects; an option ssh rejects proves the options file is read.
    let good = SshTarget {
        options: strings(&["ServerAliveCountMax=3"]),
        ..sshd.target(sshd.known_hosts())
    };
    RemoteHost::connect(&good)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .close()
        .await
        .unwrap();
    let bad = SshTarget {
        options: strings(&["NoSuchSshOption=1"]),
        ..sshd.target(sshd.known_hosts())
    };
    let err = RemoteHost::connect(&bad).await.unwrap_err();
    assert!(
        err.to_string().contains("NoSuchSshOption")
            || err.to_string().contains("Bad configuration option"),
        "{err}"
    );
}

/// `LocalCommand` runs a local command once connected: refused unless the configuration names
/// it in `allow_command_options`, and then it works.
#[tokio::test]
async fn command_options_run_only_when_explicitly_allowed() {
    let sshd = Sshd::start();
    let marker = sshd.path("local-command-ran");
    let options = strings(&[
        "PermitLocalCommand=yes",
        &format!("LocalCommand=touch {}", marker.display()),
    ]);
    let refused = SshTarget {
        options: options.clone(),
        ..sshd.target(sshd.known_hosts())
    };
    let err = RemoteHost::connect(&refused).await.unwrap_err().to_string();
    assert!(err.contains("allow_command_options"), "{err}");
    assert!(!marker.exists(), "a refused option ran");

    let allowed = SshTarget {
        options,
        allow_command_options: strings(&["PermitLocalCommand", "LocalCommand"]),
        ..sshd.target(sshd.known_hosts())
    };
    let host = RemoteHost::connect(&allowed)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    host.close().await.unwrap();
    assert!(marker.exists(), "the allowed LocalCommand did not run");
}
