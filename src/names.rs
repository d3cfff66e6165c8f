//! What a host or guest name may be. Names come from es.xml and HCL and end up in libvirt URIs,
//! SSH destinations and host-side command lines, so they are checked as data before they reach
//! any of those: a name that could be read as syntax (`/`, `?`, `#`, `@`, spaces, a leading
//! `-`…) is refused where it is read, with its place.
//!
//! Configured URIs are checked here too: berth adds its own SSH settings to libvirt URIs, and
//! a URI may not override them or name a local command.
//!
//! A leaf module: both `config` and `inventory` use it.

use std::net::IpAddr;

/// Longest DNS name (RFC 1035 §2.3.4, without the trailing dot).
const MAX_NAME_LEN: usize = 253;
/// Longest DNS label.
const MAX_LABEL_LEN: usize = 63;

/// Checks a KVM host name: an RFC 1123 host name (dot-separated labels of 1–63 ASCII letters,
/// digits and `-`, neither starting nor ending with `-`; 253 characters at most) or an IPv4 or
/// IPv6 literal. Returns why not.
pub fn check_host_name(name: &str) -> Result<(), String> {
    if name.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    check_dns_name(name)
        .map_err(|why| format!("{why}; a host is an RFC 1123 host name or an IP address"))
}

/// Checks a guest name. It is the libvirt domain name and the guest's es.xml `hostName`, and
/// berth passes it to libvirt and to host-side commands: an RFC 1123 host name (see
/// [`check_host_name`]; no IP literal). libvirt itself refuses only `/` in domain names, but
/// an es.xml host name never needs more than letters, digits, `-` and `.`.
pub fn check_guest_name(name: &str) -> Result<(), String> {
    check_dns_name(name).map_err(|why| {
        format!("{why}; a guest name is an RFC 1123 host name (its libvirt domain name)")
    })
}

/// What a device path ([`check_device_path`]) may be, for messages.
pub const DEVICE_PATH_RULE: &str = "an absolute path (`/dev/exc/vm01_u01`) of `/`-separated components made of \
     ASCII letters, digits and `._+:@,-`, none of them `.` or `..`, 4095 bytes at most";

/// Checks a volume's device path before it becomes an argument of a host-side command: see
/// [`DEVICE_PATH_RULE`]. No whitespace, quotes, NUL, line breaks or shell metacharacters (the
/// command gets it as one argument anyway; a path that needs them is not a device path), and
/// it starts with `/`, so it is never read as an option.
pub fn check_device_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("not an absolute path".into());
    }
    if path.len() > 4095 {
        return Err("longer than 4095 bytes".into());
    }
    if let Some(c) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/._+:@,-".contains(*c)))
    {
        return Err(format!("character {c:?} is not allowed"));
    }
    for component in path[1..].split('/') {
        match component {
            "" => return Err("empty component (`//` or a trailing `/`)".into()),
            "." | ".." => return Err(format!("`{component}` component")),
            _ => {}
        }
    }
    Ok(())
}

/// URI query parameters berth sets itself on libvirt's SSH transports (from `inventory.ssh`),
/// or that make libvirt run a command (`command=` locally, `netcat=` on the host): a configured
/// libvirt URI may not carry them.
pub const RESERVED_URI_PARAMS: &[&str] = &[
    "keyfile",
    "known_hosts",
    "known_hosts_verify",
    "no_verify",
    "command",
    "netcat",
];

/// The query parameters of `uri` that berth reserves ([`RESERVED_URI_PARAMS`]), by name
/// (compared case-insensitively, percent-encoded names decoded).
pub fn reserved_uri_params(uri: &str) -> Vec<&'static str> {
    let Some((_, query)) = uri.split_once('?') else {
        return Vec::new();
    };
    let query = query.split('#').next().unwrap_or_default();
    query
        .split(['&', ';'])
        .filter_map(|pair| {
            let name = percent_decode(pair.split('=').next().unwrap_or_default());
            RESERVED_URI_PARAMS
                .iter()
                .find(|r| r.eq_ignore_ascii_case(name.trim()))
                .copied()
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("longer than {MAX_NAME_LEN} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(format!(
            "character {c:?} is not allowed (letters, digits, `-` and `.` only)"
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label (two dots, or a leading or trailing dot)".into());
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(format!(
                "label `{label}` is longer than {MAX_LABEL_LEN} characters"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label `{label}` starts or ends with `-`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_addresses_pass() {
        for ok in [
            "exa01adm01",
            "exa01adm01.example.com",
            "10.0.0.12",
            "fe80::1",
            "2001:db8::12",
            "a-b.c0",
            "0lab",
        ] {
            assert_eq!(check_host_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn syntax_in_names_is_refused() {
        for bad in [
            "exa01adm02.example.com/system?command=/path/evil.sh&no_verify=1#",
            "",
            "-oProxyCommand=x",
            "root@h",
            "h h",
            "h;id",
            "h\nx",
            "a..b",
            ".a",
            "a.",
            "a-.b",
            "h_1",
            "h%2f",
            "[fe80::1]",
            &"a".repeat(64),
            &format!("{}.b", "a.".repeat(130)),
        ] {
            assert!(check_host_name(bad).is_err(), "{bad:?}");
            assert!(check_guest_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_guest_name("10.0.0.1").is_ok(), "labels of digits");
        assert!(check_guest_name("fe80::1").is_err());
    }

    #[test]
    fn device_paths_are_absolute_and_plain() {
        for ok in ["/dev/exc/vm03_u01", "/dev/exc/a.b-c+d:e@f,g", "/x"] {
            assert_eq!(check_device_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "dev/exc/x",
            "-rf",
            "/dev/exc/../../etc/passwd",
            "/dev/./exc",
            "/dev//exc",
            "/dev/exc/",
            "/dev/exc/vm03 sys",
            "/dev/exc/it's",
            "/dev/exc/a;b",
            "/dev/exc/$(id)",
            "/dev/exc/a`id`",
            "/dev/exc/a\nb",
            "/dev/exc/a\0b",
            "/dev/exc/a|b",
            "/dev/exc/a>b",
            "/dev/exc/*",
            "",
        ] {
            assert!(check_device_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_device_path(&format!("/{}", "a".repeat(4095))).is_err());
    }

    #[test]
    fn reserved_uri_params_are_found_by_name() {
        assert_eq!(
            reserved_uri_params("qemu+ssh://h/system?Command=/x&socket=/s&no%5Fverify=1#a"),
            vec!["command", "no_verify"]
        );
        assert!(reserved_uri_params("qemu+ssh://h/system").is_empty());
        assert!(reserved_uri_params("qemu+ssh://h/system?socket=/s").is_empty());
    }
}
