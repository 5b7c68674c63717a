//! `junit.xml`: one `<testsuite>` per suite, one `<testcase>` per run, as CI systems read them
//! (the attributes the JUnit XSD requires: testsuite `name tests failures errors time`,
//! testcase `name classname time`).
//!
//! Verdicts: valid → a passing testcase; invalid → `<failure type="invalid">` whose message is
//! the counterexample; unknown → `<error type="unknown">`; crashed or skipped →
//! `<error type="crashed">`. The full text is also the element's body.

use super::{RunResult, RunSpec, RunStatus};

/// Escapes text for an XML attribute or element ([`crate::report::html::esc`], whose five
/// entities XML shares); drops the characters XML 1.0 cannot carry, keeps a newline as `&#10;`
/// (an attribute's value would otherwise fold it into a space) and turns tabs and carriage
/// returns into spaces.
pub fn escape(s: &str) -> String {
    let carried: String = s
        .chars()
        .filter_map(|c| match c {
            '\t' | '\r' => Some(' '),
            '\n' => Some('\n'),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => None,
            c => Some(c),
        })
        .collect();
    crate::report::html::esc(&carried).replace('\n', "&#10;")
}

/// The `junit.xml` text of a suite named `suite` whose runs are `runs`.
pub fn render(suite: &str, timestamp: &str, runs: &[(RunSpec, RunResult)]) -> String {
    let failures = runs
        .iter()
        .filter(|(_, r)| r.status == RunStatus::Invalid)
        .count();
    let errors = runs
        .iter()
        .filter(|(_, r)| matches!(r.status, RunStatus::Unknown | RunStatus::Crashed))
        .count();
    let time: f64 = runs.iter().map(|(_, r)| r.elapsed_s).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x += &format!(
        "<testsuites name=\"splitbrain\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">\n",
        runs.len()
    );
    x += &format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" time=\"{time:.3}\" timestamp=\"{}\" hostname=\"localhost\">\n",
        escape(suite),
        runs.len(),
        escape(timestamp)
    );
    for (spec, r) in runs {
        let classname = format!("splitbrain.{}.{}.{}", suite, spec.target, spec.workload);
        x += &format!(
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
            escape(&spec.name),
            escape(&classname),
            r.elapsed_s
        );
        let (tag, kind) = match r.status {
            RunStatus::Valid => {
                x += " />\n";
                continue;
            }
            RunStatus::Invalid => ("failure", "invalid"),
            RunStatus::Unknown => ("error", "unknown"),
            RunStatus::Crashed => ("error", "crashed"),
        };
        let mut msg = r.message.clone();
        if let Some(d) = &r.run_dir {
            msg = format!("{msg}\nrun directory: {}", d.display());
        }
        x += ">\n";
        x += &format!(
            "      <{tag} type=\"{kind}\" message=\"{}\">{}</{tag}>\n",
            escape(&msg),
            escape(&msg)
        );
        x += "    </testcase>\n";
    }
    x += "  </testsuite>\n</testsuites>\n";
    x
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testkit::junit_schema::{check_junit, parse};

    fn spec(name: &str) -> RunSpec {
        RunSpec {
            name: name.into(),
            target: "etcd".into(),
            net: "netns".into(),
            workload: "kv".into(),
            nemesis: "kill".into(),
            repeat: 1,
            seed: 1,
            nodes: 3,
            time_limit: 1.0,
            concurrency: None,
            rate: None,
            nemesis_interval: None,
            recovery_time: None,
        }
    }

    #[test]
    fn junit_has_the_required_attributes_and_counts_failures_and_errors() {
        let mk = |s: RunStatus, m: &str| RunResult {
            status: s,
            ..RunResult::crashed(m, 2.5)
        };
        let runs = vec![
            (spec("a"), mk(RunStatus::Valid, "")),
            (
                spec("b<&>"),
                mk(
                    RunStatus::Invalid,
                    "key k3: read 1 after \"write 2\"\n  at op 17",
                ),
            ),
            (spec("c"), mk(RunStatus::Unknown, "checker's deadline")),
            (spec("d"), mk(RunStatus::Crashed, "etcd did not start\u{1}")),
        ];
        let xml = render("smoke", "20261122T112600", &runs);
        let cases = check_junit(&xml).unwrap();
        assert_eq!(cases.len(), 4);
        assert_eq!(cases[0], ("a".to_string(), None));
        assert_eq!(cases[1].0, "b<&>");
        assert_eq!(
            cases[1].1.as_deref(),
            Some("failure:key k3: read 1 after \"write 2\"\n  at op 17")
        );
        assert_eq!(cases[2].1.as_deref(), Some("error:checker's deadline"));
        assert_eq!(cases[3].1.as_deref(), Some("error:etcd did not start"));
        assert!(xml.contains("failures=\"1\" errors=\"2\""));
    }

    #[test]
    fn escape_gives_xml_entities_and_drops_what_xml_cannot_carry() {
        assert_eq!(
            escape("a<&>\"'\n\t\r\u{1}\u{FFFE}b"),
            "a&lt;&amp;&gt;&quot;&#x27;&#10;  b"
        );
    }

    #[test]
    fn checker_rejects_junit_missing_required_attributes() {
        let bad = "<testsuites><testsuite name=\"x\" tests=\"1\" failures=\"0\" errors=\"0\" time=\"1\"><testcase name=\"a\" time=\"1\"/></testsuite></testsuites>";
        assert!(check_junit(bad).unwrap_err().contains("classname"));
        assert!(parse("<a><b></a>").is_err());
    }
}
