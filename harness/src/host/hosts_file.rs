//! The `--hosts FILE` format: which remote machines the members run on (pure parsing, no I/O
//! beyond the caller reading the file).
//!
//! Two forms, told apart by the first line that is not blank or a comment:
//! - **lines**: one `[user@]host[:port]` per line (`[v6addr]:port` for IPv6 literals),
//!   `#` starts a comment, blank lines are skipped;
//! - **TOML** (first line starts with `[[`, i.e. `[[host]]`): one `[[host]]` table per machine with `host`
//!   (required), `user`, `port`, `key` (a private key file for this host), `workdir` (where
//!   the harness keeps its files there, default `splitbrain` under the login's home),
//!   `address` (the IPv4 address members listen on and peers dial, default: `host` resolved)
//!   `program` (the member binary on that host, e.g. an installed etcd, instead of the
//!   target's default) and `nft` (the nftables program there, default `nft`).
//!
//! Member `i` (1-based, `n1` …) runs on the `i`-th host. Errors carry the file and line.

use std::path::{Path, PathBuf};

/// Where the harness keeps its files on a host unless the hosts file says otherwise (relative
/// paths are under the login's home directory).
pub const DEFAULT_WORKDIR: &str = "splitbrain";

/// One remote machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostEntry {
    /// The login, if given (else ssh's default: the config's or the local user name).
    pub user: Option<String>,
    /// A host name or address, as ssh is given it.
    pub host: String,
    /// The SSH port.
    pub port: u16,
    /// A private key for this host (overrides `--ssh-key`).
    pub key: Option<PathBuf>,
    /// The harness's directory on the host.
    pub workdir: String,
    /// The address members on this host listen on and are dialled at, if not `host`.
    pub address: Option<String>,
    /// The member program on this host, if not the target's (which is uploaded when it is
    /// the harness itself).
    pub program: Option<String>,
    /// The `nft` program on this host, if not `nft` on its `PATH`.
    pub nft: Option<String>,
    /// The line of the hosts file it came from (for errors).
    pub line: usize,
}

impl HostEntry {
    /// `user@host:port` (for messages and ssh's destination).
    pub fn label(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match &self.user {
            Some(u) => format!("{u}@{host}:{}", self.port),
            None => format!("{host}:{}", self.port),
        }
    }
}

/// A malformed hosts file: where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct HostsError {
    pub file: String,
    /// 1-based; 0 when the error is about the whole file.
    pub line: usize,
    pub message: String,
}

/// Reads and parses the hosts file at `path`.
pub fn load(path: &Path) -> Result<Vec<HostEntry>, HostsError> {
    let text = std::fs::read_to_string(path).map_err(|e| HostsError {
        file: path.display().to_string(),
        line: 0,
        message: format!("cannot read the hosts file: {e}"),
    })?;
    parse(&path.display().to_string(), &text)
}

/// Parses a hosts file's text (`file` names it in errors). See the module docs.
pub fn parse(file: &str, text: &str) -> Result<Vec<HostEntry>, HostsError> {
    let err = |line: usize, message: String| HostsError {
        file: file.to_string(),
        line,
        message,
    };
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    let hosts = match first {
        None => return Err(err(0, "no hosts in the file".into())),
        Some(l) if l.starts_with("[[") => parse_toml(text, &err)?,
        Some(_) => parse_lines(text, &err)?,
    };
    for (i, h) in hosts.iter().enumerate() {
        if let Some(prev) = hosts[..i]
            .iter()
            .find(|p| p.host == h.host && p.port == h.port)
        {
            return Err(err(
                h.line,
                format!(
                    "host {} is listed twice (first on line {}): one member per host",
                    h.label(),
                    prev.line
                ),
            ));
        }
    }
    Ok(hosts)
}

fn parse_lines(
    text: &str,
    err: &dyn Fn(usize, String) -> HostsError,
) -> Result<Vec<HostEntry>, HostsError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        let (user, host, port) = parse_destination(l).map_err(|m| err(line, m))?;
        out.push(HostEntry {
            user,
            host,
            port,
            key: None,
            workdir: DEFAULT_WORKDIR.into(),
            address: None,
            program: None,
            nft: None,
            line,
        });
    }
    Ok(out)
}

/// `[user@]host[:port]` → parts; the message says what is wrong.
pub fn parse_destination(l: &str) -> Result<(Option<String>, String, u16), String> {
    if l.chars().any(char::is_whitespace) {
        return Err(format!(
            "{l:?}: expected one `[user@]host[:port]` per line, found spaces"
        ));
    }
    let (user, rest) = match l.rsplit_once('@') {
        Some((u, r)) => {
            if u.is_empty() {
                return Err(format!("{l:?}: empty user before `@`"));
            }
            if u.contains(['@', ':', '/']) {
                return Err(format!("{l:?}: bad user name {u:?}"));
            }
            (Some(u.to_string()), r)
        }
        None => (None, l),
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{l:?}: `[` without a closing `]`"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("{l:?}: expected `:port` after `]`"))?,
            ),
        };
        (h, port)
    } else {
        match rest.split_once(':') {
            Some((h, p)) => {
                if p.contains(':') {
                    return Err(format!(
                        "{l:?}: write IPv6 addresses in brackets: [addr]:port"
                    ));
                }
                (h, Some(p))
            }
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{l:?}: empty host"));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err(format!("{l:?}: bad host name {host:?}"));
    }
    let port = match port {
        None => 22,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("{l:?}: bad port {p:?} (expected 1-65535)")),
            Ok(n) => n,
        },
    };
    Ok((user, host.to_string(), port))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    host: Vec<toml::Spanned<TomlHost>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlHost {
    host: String,
    user: Option<String>,
    port: Option<u16>,
    key: Option<PathBuf>,
    workdir: Option<String>,
    address: Option<String>,
    program: Option<String>,
    nft: Option<String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn parse_toml(
    text: &str,
    err: &dyn Fn(usize, String) -> HostsError,
) -> Result<Vec<HostEntry>, HostsError> {
    let f: TomlFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(text, s.start));
        err(line, e.message().to_string())
    })?;
    if f.host.is_empty() {
        return Err(err(0, "no [[host]] tables".into()));
    }
    let mut out = Vec::new();
    for h in f.host {
        let line = line_of(text, h.span().start);
        let h = h.into_inner();
        // The same checks as a line `user@host:port`.
        let dest = match &h.user {
            Some(u) => format!("{u}@{}", h.host),
            None => h.host.clone(),
        };
        let dest = if h.host.contains(':') {
            dest.replace(&h.host, &format!("[{}]", h.host))
        } else {
            dest
        };
        let (user, host, _) = parse_destination(&dest).map_err(|m| err(line, m))?;
        if h.port == Some(0) {
            return Err(err(line, format!("host {host:?}: port 0")));
        }
        if let Some(w) = &h.workdir {
            if w.trim().is_empty() || w.contains(['\n', '\0']) {
                return Err(err(line, format!("host {host:?}: bad workdir {w:?}")));
            }
        }
        if let Some(a) = &h.address {
            if a.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(err(
                    line,
                    format!("host {host:?}: address {a:?} is not an IPv4 address"),
                ));
            }
        }
        out.push(HostEntry {
            user,
            host,
            port: h.port.unwrap_or(22),
            key: h.key,
            workdir: h.workdir.unwrap_or_else(|| DEFAULT_WORKDIR.into()),
            address: h.address,
            program: h.program,
            nft: h.nft,
            line,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(text: &str) -> HostsError {
        parse("hosts", text).expect_err(text)
    }

    #[test]
    fn lines_give_user_host_and_port_with_comments_and_blanks_skipped() {
        let h = parse(
            "hosts",
            "# staging\n\nroot@10.0.0.1\nadmin@db2.example.com:2222  # the second\n10.0.0.3\n[fd00::7]:23\n",
        )
        .unwrap();
        assert_eq!(h.len(), 4);
        assert_eq!(
            (
                h[0].user.as_deref(),
                h[0].host.as_str(),
                h[0].port,
                h[0].line
            ),
            (Some("root"), "10.0.0.1", 22, 3)
        );
        assert_eq!(
            (h[1].user.as_deref(), h[1].host.as_str(), h[1].port),
            (Some("admin"), "db2.example.com", 2222)
        );
        assert_eq!((h[2].user.as_deref(), h[2].port), (None, 22));
        assert_eq!((h[3].host.as_str(), h[3].port), ("fd00::7", 23));
        assert_eq!(h[3].label(), "[fd00::7]:23");
        assert_eq!(h[0].workdir, DEFAULT_WORKDIR);
    }

    #[test]
    fn malformed_lines_are_rejected_with_their_line_number() {
        let cases = [
            ("a@h1\nroot@h2:0\n", 2, "bad port"),
            ("h1\n\n# c\nroot@h3:99999\n", 4, "bad port"),
            ("h1\nh2:ssh\n", 2, "bad port"),
            ("@h1\n", 1, "empty user"),
            ("root@\n", 1, "empty host"),
            ("h1\nroot@h2 extra\n", 2, "spaces"),
            ("fd00::1:22\n", 1, "brackets"),
            ("[fd00::1\n", 1, "closing"),
            ("h1\nh$2\n", 2, "bad host"),
            ("h1\nroot@h1:22\n", 2, "listed twice"),
        ];
        for (text, line, what) in cases {
            let e = bad(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(what), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("hosts:{line}: ")), "{e}");
        }
        assert_eq!(bad("# nothing\n\n").line, 0);
    }

    #[test]
    fn toml_gives_per_host_user_key_port_workdir_address_and_program() {
        let h = parse(
            "hosts.toml",
            r#"
[[host]]
host = "10.0.0.1"
user = "root"
key = "/keys/a"
workdir = "/srv/sb"

[[host]]
host = "db2"
port = 2222
address = "10.0.0.2"
program = "/opt/etcd/bin/etcd"
"#,
        )
        .unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].label(), "root@10.0.0.1:22");
        assert_eq!(h[0].key.as_deref(), Some(Path::new("/keys/a")));
        assert_eq!(h[0].workdir, "/srv/sb");
        assert_eq!(h[0].line, 2);
        assert_eq!((h[1].port, h[1].user.as_ref()), (2222, None));
        assert_eq!(h[1].address.as_deref(), Some("10.0.0.2"));
        assert_eq!(h[1].program.as_deref(), Some("/opt/etcd/bin/etcd"));
        assert_eq!(h[1].line, 8);
    }

    #[test]
    fn malformed_toml_is_rejected_with_the_line_of_the_fault() {
        let e = bad("[[host]]\nhost = \"a\"\n\n[[host]]\nhots = \"b\"\n");
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("hots"), "{e}");
        let e = bad("[[host]]\nhost = \"a\"\n[[host]]\nhost = \"b\"\naddress = \"b.example\"\n");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("IPv4"), "{e}");
        let e = bad("[[host]]\nhost = \"a b\"\n");
        assert_eq!(e.line, 1, "{e}");
        let e = bad("[[host]]\nhost = \"a\"\nport = 70000\n");
        assert_eq!(e.line, 3, "{e}");
    }
}
