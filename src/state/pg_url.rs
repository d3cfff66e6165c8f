//! The PostgreSQL connection string, as libpq users write it: a URL
//! (`postgresql://user@host:5432/db?sslmode=verify-full&sslrootcert=ca.pem`) or key/value pairs
//! (`host=db port=5432 sslmode=verify-full sslrootcert='/etc/berth/ca.pem'`).
//!
//! tokio-postgres parses both, but knows only `disable`, `prefer` and `require` for `sslmode`
//! and none of libpq's certificate parameters. [`split_tls_params`] takes those out (berth
//! handles them: [`super::pg_tls`]) and leaves the rest to the driver. [`shown_url`] writes the
//! connection back for messages, never with its password.

use std::collections::BTreeMap;

/// The libpq parameters berth handles itself instead of the driver.
pub const TLS_PARAMS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// `conn` without the [`TLS_PARAMS`], and their values (percent-decoded in a URL, unquoted in
/// key/value form). A parameter given twice keeps its last value, as in libpq.
pub fn split_tls_params(conn: &str) -> Result<(String, BTreeMap<&'static str, String>), String> {
    let trimmed = conn.trim_start();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        split_url(conn)
    } else {
        split_key_values(conn)
    }
}

fn known(key: &str) -> Option<&'static str> {
    TLS_PARAMS.iter().copied().find(|k| *k == key)
}

fn split_url(url: &str) -> Result<(String, BTreeMap<&'static str, String>), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), BTreeMap::new()));
    };
    let mut found = BTreeMap::new();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match known(&percent_decode(key)?) {
            Some(k) => {
                found.insert(k, percent_decode(value)?);
            }
            None => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, found))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a `%` in the URL is not followed by two hex digits".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a URL parameter does not decode to UTF-8".to_string())
}

/// libpq's key/value syntax: `key = value` pairs separated by spaces; a value may be quoted
/// with `'`, and `\` escapes the next character.
fn split_key_values(conn: &str) -> Result<(String, BTreeMap<&'static str, String>), String> {
    let mut found = BTreeMap::new();
    let mut kept: Vec<&str> = Vec::new();
    let chars: Vec<(usize, char)> = conn.char_indices().collect();
    let end = conn.len();
    let at = |i: usize| chars.get(i).map(|c| c.1);
    let offset = |i: usize| chars.get(i).map_or(end, |c| c.0);
    let mut i = 0;
    loop {
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        if at(i).is_none() {
            break;
        }
        let start = i;
        while at(i).is_some_and(|c| c != '=' && !c.is_whitespace()) {
            i += 1;
        }
        let key = &conn[offset(start)..offset(i)];
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        if at(i) != Some('=') {
            return Err(format!("`{key}` in the connection string has no `=` value"));
        }
        i += 1;
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        let mut value = String::new();
        if at(i) == Some('\'') {
            i += 1;
            loop {
                match at(i) {
                    None => {
                        return Err(format!(
                            "the value of `{key}` in the connection string has no closing quote"
                        ));
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('\\') if at(i + 1).is_some() => {
                        value.extend(at(i + 1));
                        i += 2;
                    }
                    Some(c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while let Some(c) = at(i).filter(|c| !c.is_whitespace()) {
                if c == '\\' && at(i + 1).is_some() {
                    value.extend(at(i + 1));
                    i += 2;
                } else {
                    value.push(c);
                    i += 1;
                }
            }
        }
        match known(key) {
            Some(k) => {
                found.insert(k, value);
            }
            None => kept.push(&conn[offset(start)..offset(i)]),
        }
    }
    Ok((kept.join(" "), found))
}

/// The connection as a URL for messages: user, hosts, ports, database and `extra` query
/// parameters, and never the password (it is not taken from `config` at all).
pub fn shown_url(config: &postgres::Config, extra: &[(&str, String)]) -> String {
    use postgres::config::Host;
    let ports = config.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let mut tcp = Vec::new();
    let mut query: Vec<(String, String)> = Vec::new();
    for (i, host) in config.get_hosts().iter().enumerate() {
        match host {
            Host::Tcp(name) if name.contains(':') => tcp.push(format!("[{name}]:{}", port(i))),
            Host::Tcp(name) => tcp.push(format!("{name}:{}", port(i))),
            Host::Unix(dir) => {
                query.push(("host".into(), dir.display().to_string()));
                query.push(("port".into(), port(i).to_string()));
            }
        }
    }
    let addrs: Vec<String> = config
        .get_hostaddrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    if !addrs.is_empty() {
        query.push(("hostaddr".into(), addrs.join(",")));
    }
    query.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let mut url = format!(
        "postgresql://{user}{}/{}",
        tcp.join(","),
        config.get_dbname().unwrap_or("")
    );
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn a_url_loses_only_the_tls_parameters() {
        let (rest, found) = split_tls_params(
            "postgresql://u:pw@db:5433/berth?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca%20one.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgresql://u:pw@db:5433/berth?application_name=x");
        assert_eq!(found["sslmode"], "verify-full");
        assert_eq!(found["sslrootcert"], "/etc/ca one.pem");
        let (rest, found) = split_tls_params("postgres://db/berth?sslmode=require").unwrap();
        assert_eq!(rest, "postgres://db/berth");
        assert_eq!(found["sslmode"], "require");
        assert!(split_tls_params("postgres://db/x?sslrootcert=%zz").is_err());
    }

    #[test]
    fn key_values_keep_their_quoting_and_lose_the_tls_parameters() {
        let (rest, found) = split_tls_params(
            "host=db  sslmode = verify-ca password='a b\\'c' sslrootcert='/etc/my ca.pem' dbname=berth",
        )
        .unwrap();
        assert_eq!(rest, "host=db password='a b\\'c' dbname=berth");
        assert_eq!(found["sslmode"], "verify-ca");
        assert_eq!(found["sslrootcert"], "/etc/my ca.pem");
        let config = postgres::Config::from_str(&rest).unwrap();
        assert_eq!(config.get_password(), Some(&b"a b'c"[..]));
        assert!(split_tls_params("host=db sslmode").is_err());
        assert!(split_tls_params("host=db sslrootcert='x").is_err());
    }

    #[test]
    fn the_shown_url_never_has_the_password() {
        let config =
            postgres::Config::from_str("postgresql://berth:s3cret@db1:5433,db2/berth").unwrap();
        let shown = shown_url(&config, &[("sslmode", "require".into())]);
        assert_eq!(
            shown,
            "postgresql://berth@db1:5433,db2:5432/berth?sslmode=require"
        );
        let config =
            postgres::Config::from_str("host=/run/postgresql port=5432 password=s3cret").unwrap();
        let shown = shown_url(&config, &[]);
        assert_eq!(shown, "postgresql:///?host=/run/postgresql&port=5432");
    }
}
