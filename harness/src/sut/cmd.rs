//! The `cmd` target: any binary that speaks the node's client API (DESIGN §3), started from a
//! command template such as `BIN --id {id} --listen {listen} {peers}`.
//!
//! # Template
//! The template is split on whitespace (single or double quotes group words, no escapes),
//! then each word has its placeholders replaced:
//!
//! | placeholder | becomes |
//! |---|---|
//! | `{id}` | the member's id (`n1`) |
//! | `{listen}` | its client (and peer) address, `127.0.0.1:7001` |
//! | `{peers}` | `--peer n2=http://ADDR --peer n3=http://ADDR …` (one word each), using the routes the network gives this member |
//! | `{data-dir}` | its data directory |
//! | `{token}` | the cluster token |
//!
//! A word that is exactly `{peers}` expands to several words; anywhere else `{peers}` is an
//! error, as is any other `{…}`. Clients and `/status` use the node's HTTP API, so the target
//! behaves as `splitbrain` does apart from how members start. The binary must serve clients and
//! peers on one port.

use super::{BoxFuture, Client, MemberCommand, MemberSpec, MemberStatus, Target};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A target started from a command template. See the module docs.
#[derive(Debug, Clone)]
pub struct Cmd {
    words: Vec<String>,
}

/// Why a template is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("--node-cmd is empty")]
    Empty,
    #[error("--node-cmd: unclosed quote")]
    UnclosedQuote,
    #[error("--node-cmd: unknown placeholder `{0}` in word `{1}` (known: {{id}} {{listen}} {{peers}} {{data-dir}} {{token}})")]
    UnknownPlaceholder(String, String),
    #[error("--node-cmd: `{{peers}}` must be a word of its own, found in `{0}`")]
    PeersInsideWord(String),
}

const PLACEHOLDERS: &[&str] = &["{id}", "{listen}", "{peers}", "{data-dir}", "{token}"];

impl Cmd {
    /// Parses and validates a template.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let words = split_words(template)?;
        if words.is_empty() {
            return Err(TemplateError::Empty);
        }
        for w in &words {
            if w.contains("{peers}") && w != "{peers}" {
                return Err(TemplateError::PeersInsideWord(w.clone()));
            }
            let mut rest = w.as_str();
            while let Some(start) = rest.find('{') {
                let end = rest[start..]
                    .find('}')
                    .map(|e| start + e + 1)
                    .unwrap_or(rest.len());
                let ph = &rest[start..end];
                if !PLACEHOLDERS.contains(&ph) {
                    return Err(TemplateError::UnknownPlaceholder(ph.into(), w.clone()));
                }
                rest = &rest[end..];
            }
        }
        Ok(Cmd { words })
    }

    /// The command line for member `m`.
    pub fn expand(&self, m: &MemberSpec) -> MemberCommand {
        let mut out = Vec::new();
        for w in &self.words {
            if w == "{peers}" {
                for r in &m.routes {
                    out.push("--peer".to_string());
                    out.push(format!("{}=http://{}", r.id, r.addr));
                }
                continue;
            }
            out.push(
                w.replace("{id}", &m.id)
                    .replace("{listen}", &m.client_addr.to_string())
                    .replace("{data-dir}", &m.data_dir.display().to_string())
                    .replace("{token}", &m.cluster_token),
            );
        }
        out.extend(m.extra_args.iter().cloned());
        let program = PathBuf::from(out.remove(0));
        MemberCommand {
            program,
            args: out,
            env: vec![],
        }
    }
}

pub(crate) fn split_words(s: &str) -> Result<Vec<String>, TemplateError> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.get_or_insert_with(String::new).push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                cur.get_or_insert_with(String::new);
            }
            None if c.is_whitespace() => words.extend(cur.take()),
            None => cur.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        return Err(TemplateError::UnclosedQuote);
    }
    words.extend(cur);
    Ok(words)
}

impl Target for Cmd {
    fn name(&self) -> &'static str {
        "cmd"
    }

    fn shares_client_and_peer_port(&self) -> bool {
        true
    }

    fn command(&self, m: &MemberSpec, _all: &[MemberSpec]) -> anyhow::Result<MemberCommand> {
        Ok(self.expand(m))
    }

    fn client(&self, m: &MemberSpec, timeout: Duration) -> anyhow::Result<Arc<dyn Client>> {
        node_api().client(m, timeout)
    }

    fn client_with_values(
        &self,
        m: &MemberSpec,
        timeout: Duration,
        values: super::Values,
    ) -> anyhow::Result<Arc<dyn Client>> {
        node_api().client_with_values(m, timeout, values)
    }

    fn status<'a>(
        &'a self,
        m: &'a MemberSpec,
        timeout: Duration,
    ) -> BoxFuture<'a, anyhow::Result<MemberStatus>> {
        Box::pin(async move { node_api().status(m, timeout).await })
    }
}

/// A `cmd` member speaks the project's node API (DESIGN §3): its client and status calls are
/// the Splitbrain target's (whose `exe` only matters for starting members, not used here).
fn node_api() -> super::splitbrain::Splitbrain {
    super::splitbrain::Splitbrain {
        exe: PathBuf::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sut::PeerRoute;

    fn member() -> MemberSpec {
        MemberSpec {
            id: "n1".into(),
            client_addr: "127.0.0.1:7001".parse().unwrap(),
            peer_addr: "127.0.0.1:7001".parse().unwrap(),
            routes: vec![
                PeerRoute {
                    id: "n2".into(),
                    addr: "127.0.0.1:7102".parse().unwrap(),
                },
                PeerRoute {
                    id: "n3".into(),
                    addr: "127.0.0.1:7103".parse().unwrap(),
                },
            ],
            data_dir: "/tmp/run/n1".into(),
            log_file: "/tmp/run/n1.log".into(),
            cluster_token: "tok".into(),
            extra_args: vec!["--bug".into(), "stale-read".into()],
            seed: 1,
        }
    }

    #[test]
    fn expands_every_placeholder_and_peers_into_words() {
        let c = Cmd::parse("/bin/node node --id {id} --listen {listen} {peers} --data-dir {data-dir} --cluster-token={token}").unwrap();
        let mc = c.expand(&member());
        assert_eq!(mc.program, PathBuf::from("/bin/node"));
        assert_eq!(
            mc.args,
            [
                "node",
                "--id",
                "n1",
                "--listen",
                "127.0.0.1:7001",
                "--peer",
                "n2=http://127.0.0.1:7102",
                "--peer",
                "n3=http://127.0.0.1:7103",
                "--data-dir",
                "/tmp/run/n1",
                "--cluster-token=tok",
                "--bug",
                "stale-read"
            ]
        );
    }

    #[test]
    fn keeps_quoted_words_together() {
        let c = Cmd::parse(r#"'/opt/my node' --name "a b" {id}"#).unwrap();
        let mc = c.expand(&member());
        assert_eq!(mc.program, PathBuf::from("/opt/my node"));
        assert_eq!(&mc.args[..3], ["--name", "a b", "n1"]);
    }

    #[test]
    fn rejects_unknown_placeholders_and_bad_templates() {
        assert_eq!(
            Cmd::parse("bin --x {nope}").unwrap_err(),
            TemplateError::UnknownPlaceholder("{nope}".into(), "{nope}".into())
        );
        assert_eq!(Cmd::parse("  ").unwrap_err(), TemplateError::Empty);
        assert_eq!(
            Cmd::parse("bin 'x").unwrap_err(),
            TemplateError::UnclosedQuote
        );
        assert!(matches!(
            Cmd::parse("bin a{peers}"),
            Err(TemplateError::PeersInsideWord(_))
        ));
    }
}
