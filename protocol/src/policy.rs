//! The service's policy (§9): the c2sp.org/tlog-policy file that lists a service's replicas,
//! one log (note verifier key, optional URL) per replica, parsed, formatted and searched by
//! identity fingerprint.
//!
//! Hand-written: the format is a few line rules, and the one Rust parser of it (sigsum's) knows
//! only Ed25519 keys, not this protocol's ECDSA note verifier keys. This service has no
//! witnesses, so of the quorum rules only `quorum none` is accepted; `witness` and `group`
//! lines, and any other quorum, are refused by name rather than ignored, so that a policy
//! written for cosigned checkpoints is never silently trusted without its cosignatures.

use std::fmt;

use crate::Error;
use crate::commitment::Digest;
use crate::identity::IdentityPublicKey;
use crate::verify::PinnedIdentity;

/// The largest policy accepted, in bytes: room for hundreds of replicas.
pub const MAX_POLICY_BYTES: usize = 65_536;

/// One `log` line: a replica's identity and, if given, its base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLog {
    /// The replica's origin and identity key, from the note verifier key.
    pub identity: PinnedIdentity,
    /// The replica's base URL (`http://` or `https://`); none means the URL the policy was
    /// obtained from, which is how a standalone daemon describes itself.
    pub url: Option<String>,
}

/// A parsed policy: at least one log, each key, origin and URL once, at most one log without
/// a URL, and `quorum none`.
#[derive(Debug, Clone)]
pub struct Policy {
    logs: Vec<PolicyLog>,
}

impl Policy {
    /// A policy of these logs, checked as a parsed one is.
    pub fn new(logs: Vec<PolicyLog>) -> Result<Self, Error> {
        let policy = Self { logs };
        policy.check()?;
        Ok(policy)
    }

    /// Parses a policy file (at most [`MAX_POLICY_BYTES`], UTF-8).
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_POLICY_BYTES {
            return Err(policy_error(
                None,
                format!("longer than {MAX_POLICY_BYTES} bytes"),
            ));
        }
        let text =
            std::str::from_utf8(bytes).map_err(|_| policy_error(None, "not UTF-8".into()))?;
        let mut logs = Vec::new();
        let mut quorum = false;
        for (number, line) in text.lines().enumerate() {
            let line_error = |reason: &str| policy_error(Some(number + 1), reason.to_owned());
            let words: Vec<&str> = line.split_ascii_whitespace().collect();
            match words.as_slice() {
                [] => {}
                [first, ..] if first.starts_with('#') => {}
                ["log", vkey, rest @ ..] if rest.len() <= 1 => {
                    let (origin, key) = IdentityPublicKey::from_note_verifier_key(vkey)
                        .map_err(|_| line_error("not a note verifier key of this protocol"))?;
                    let url = rest.first().map(|url| (*url).to_owned());
                    if url.as_deref().is_some_and(|url| !is_http_url(url)) {
                        return Err(line_error("the URL is not an http:// or https:// URL"));
                    }
                    logs.push(PolicyLog {
                        identity: PinnedIdentity { origin, key },
                        url,
                    });
                }
                ["log", ..] => return Err(line_error("expected `log <vkey> [<url>]`")),
                ["quorum", "none"] if !quorum => quorum = true,
                ["quorum", "none"] => return Err(line_error("a second quorum line")),
                ["quorum", ..] | ["witness", ..] | ["group", ..] => {
                    return Err(line_error(
                        "this service has no witnesses: only `quorum none` is supported",
                    ));
                }
                _ => return Err(line_error("unknown keyword")),
            }
        }
        if !quorum {
            return Err(policy_error(None, "no `quorum none` line".into()));
        }
        Self::new(logs)
    }

    /// The logs, in the policy's order.
    pub fn logs(&self) -> &[PolicyLog] {
        &self.logs
    }

    /// The log whose identity key has fingerprint `fingerprint` (`H3(SEC1)`, an announcement's
    /// `identity_fpr`).
    pub fn log_by_fingerprint(&self, fingerprint: &Digest) -> Option<&PolicyLog> {
        self.logs
            .iter()
            .find(|log| log.identity.fingerprint() == *fingerprint)
    }

    /// Whether both list the same logs, in whatever order.
    pub fn same_logs(&self, other: &Self) -> bool {
        self.logs.len() == other.logs.len() && self.logs.iter().all(|log| other.logs.contains(log))
    }

    fn check(&self) -> Result<(), Error> {
        if self.logs.is_empty() {
            return Err(policy_error(None, "no log".into()));
        }
        for (at, log) in self.logs.iter().enumerate() {
            for earlier in &self.logs[..at] {
                let duplicate = if earlier.identity.key == log.identity.key {
                    Some("key")
                } else if earlier.identity.origin == log.identity.origin {
                    Some("origin")
                } else if earlier.url.is_some() && earlier.url == log.url {
                    Some("URL")
                } else if earlier.url.is_none() && log.url.is_none() {
                    Some("log without a URL (only one replica can be the service URL itself)")
                } else {
                    None
                };
                if let Some(what) = duplicate {
                    return Err(policy_error(
                        None,
                        format!("{} and another log share a {what}", log.identity.origin),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Policy {
    /// The policy file: one `log` line per log, then `quorum none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for log in &self.logs {
            let vkey = log.identity.key.note_verifier_key(&log.identity.origin);
            match &log.url {
                Some(url) => writeln!(f, "log {vkey} {url}")?,
                None => writeln!(f, "log {vkey}")?,
            }
        }
        writeln!(f, "quorum none")
    }
}

/// A base URL the client can append a path to: `http://` or `https://`, a host, and no
/// credentials, query or fragment, which would take the path somewhere else.
fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|rest| {
        !rest.is_empty()
            && !rest.starts_with('/')
            && rest
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'@' | b'?' | b'#'))
    })
}

fn policy_error(line: Option<usize>, reason: String) -> Error {
    Error::Policy(match line {
        Some(line) => format!("line {line}: {reason}"),
        None => reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKey;

    fn identity(n: u8) -> PinnedIdentity {
        let key = IdentityKey::from_secret_bytes(&[n; 32]).unwrap().public();
        PinnedIdentity {
            origin: key.default_origin(),
            key,
        }
    }

    fn vkey(n: u8) -> String {
        let identity = identity(n);
        identity.key.note_verifier_key(&identity.origin)
    }

    fn rejected(text: &str) -> String {
        match Policy::parse(text.as_bytes()) {
            Err(Error::Policy(reason)) => reason,
            other => panic!("{text:?} was not refused as a policy: {other:?}"),
        }
    }

    #[test]
    fn parses_logs_comments_and_quorum() {
        let text = format!(
            "# replicas\n\nlog {} https://svc.example/r/0/\n  log\t{}   http://svc.example/r/1\r\nquorum none\n",
            vkey(1),
            vkey(2)
        );
        let policy = Policy::parse(text.as_bytes()).unwrap();
        assert_eq!(policy.logs().len(), 2);
        assert_eq!(policy.logs()[0].identity, identity(1));
        assert_eq!(
            policy.logs()[0].url.as_deref(),
            Some("https://svc.example/r/0/")
        );
        assert_eq!(
            policy.logs()[1].url.as_deref(),
            Some("http://svc.example/r/1")
        );
        let found = policy
            .log_by_fingerprint(&identity(2).fingerprint())
            .unwrap();
        assert_eq!(found.identity, identity(2));
        assert!(
            policy
                .log_by_fingerprint(&identity(3).fingerprint())
                .is_none()
        );
    }

    #[test]
    fn formats_what_it_parses() {
        let policy = Policy::new(vec![
            PolicyLog {
                identity: identity(1),
                url: None,
            },
            PolicyLog {
                identity: identity(2),
                url: Some("https://svc.example/r/1/".into()),
            },
        ])
        .unwrap();
        let text = policy.to_string();
        assert_eq!(
            text,
            format!(
                "log {}\nlog {} https://svc.example/r/1/\nquorum none\n",
                vkey(1),
                vkey(2)
            )
        );
        let again = Policy::parse(text.as_bytes()).unwrap();
        assert!(again.same_logs(&policy));
        assert_eq!(again.logs(), policy.logs());
    }

    #[test]
    fn comparison_ignores_order_but_not_urls() {
        let a = format!(
            "log {} http://a/\nlog {} http://b/\nquorum none\n",
            vkey(1),
            vkey(2)
        );
        let b = format!(
            "quorum none\nlog {} http://b/\nlog {} http://a/\n",
            vkey(2),
            vkey(1)
        );
        let c = format!(
            "log {} http://a/\nlog {} http://c/\nquorum none\n",
            vkey(1),
            vkey(2)
        );
        let d = format!("log {} http://a/\nquorum none\n", vkey(1));
        let parse = |text: &str| Policy::parse(text.as_bytes()).unwrap();
        assert!(parse(&a).same_logs(&parse(&b)));
        assert!(!parse(&a).same_logs(&parse(&c)));
        assert!(!parse(&a).same_logs(&parse(&d)));
        assert!(!parse(&d).same_logs(&parse(&a)));
    }

    #[test]
    fn malformed_lines_are_refused_with_their_number() {
        let key = vkey(1);
        for (text, expected) in [
            (format!("log {key}\nquorum none\nlogs {key}\n"), "line 3"),
            ("log\nquorum none\n".to_owned(), "line 1"),
            (
                format!("log {key} http://a/ extra\nquorum none\n"),
                "line 1",
            ),
            (
                format!("log {}\nquorum none\n", &key[..key.len() - 4]),
                "line 1",
            ),
            (format!("log {key} ftp://a/\nquorum none\n"), "line 1"),
            (format!("log {key} http://\nquorum none\n"), "line 1"),
            (format!("log {key} a.example\nquorum none\n"), "line 1"),
            (
                format!("log {key} http://user:pw@a.example/\nquorum none\n"),
                "line 1",
            ),
            (
                format!("log {key} http://a.example/?r=1\nquorum none\n"),
                "line 1",
            ),
            (
                format!("log {key} http://a.example/#r1\nquorum none\n"),
                "line 1",
            ),
            (format!("log {key}\nquorum\n"), "line 2"),
            (format!("log {key}\nquorum X\n"), "no witnesses"),
            (
                format!("log {key}\nwitness W {key}\nquorum W\n"),
                "no witnesses",
            ),
            (
                format!("log {key}\ngroup G any W\nquorum none\n"),
                "no witnesses",
            ),
            (
                format!("log {key}\nquorum none\nquorum none\n"),
                "second quorum",
            ),
            (format!("log {key}\n"), "no `quorum none`"),
            ("quorum none\n".to_owned(), "no log"),
            (String::new(), "no `quorum none`"),
        ] {
            let reason = rejected(&text);
            assert!(reason.contains(expected), "{text:?}: {reason}");
        }
    }

    #[test]
    fn duplicates_are_refused() {
        let one = identity(1);
        let same_origin = identity(2).key.note_verifier_key(&one.origin);
        for (text, expected) in [
            (
                format!(
                    "log {0} http://a/\nlog {0} http://b/\nquorum none\n",
                    vkey(1)
                ),
                "key",
            ),
            (
                format!(
                    "log {} http://a/\nlog {same_origin} http://b/\nquorum none\n",
                    vkey(1)
                ),
                "origin",
            ),
            (
                format!(
                    "log {} http://a/\nlog {} http://a/\nquorum none\n",
                    vkey(1),
                    vkey(2)
                ),
                "URL",
            ),
            (
                format!("log {}\nlog {}\nquorum none\n", vkey(1), vkey(2)),
                "without a URL",
            ),
        ] {
            let reason = rejected(&text);
            assert!(reason.contains(expected), "{text:?}: {reason}");
        }
    }

    #[test]
    fn size_and_encoding_are_bounded() {
        let mut long = format!("log {}\nquorum none\n", vkey(1)).into_bytes();
        long.resize(MAX_POLICY_BYTES, b'\n');
        assert!(Policy::parse(&long).is_ok());
        long.push(b'\n');
        assert!(rejected(std::str::from_utf8(&long).unwrap()).contains("longer"));
        assert!(matches!(
            Policy::parse(b"log \xff\nquorum none\n"),
            Err(Error::Policy(_))
        ));
    }
}
