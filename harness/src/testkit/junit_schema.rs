//! A strict check of `junit.xml` against the elements and attributes the JUnit XSD requires
//! (testsuite: name, tests, failures, errors, time; testcase: name, classname, time), with a
//! small XML parser for the subset junit files use. Shared by the harness's unit tests
//! (`suite::junit`) and the integration tests (`suite_*.rs`) through `splitbrain::testkit`.

use std::collections::BTreeMap;

/// A parsed XML element.
#[derive(Debug)]
pub struct Elem {
    pub name: String,
    pub attrs: BTreeMap<String, String>,
    pub children: Vec<Elem>,
    pub text: String,
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find(';').ok_or("unterminated entity")? + i;
        let ent = &rest[i + 1..end];
        out.push(match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            e if e.starts_with("#x") => char::from_u32(
                u32::from_str_radix(&e[2..], 16).map_err(|_| format!("bad entity {e}"))?,
            )
            .ok_or("bad char")?,
            e if e.starts_with('#') => {
                char::from_u32(e[1..].parse().map_err(|_| format!("bad entity {e}"))?)
                    .ok_or("bad char")?
            }
            e => return Err(format!("unknown entity &{e};")),
        });
        rest = &rest[end + 1..];
    }
    if rest.contains('<') {
        return Err("raw < in text".into());
    }
    out.push_str(rest);
    Ok(out)
}

/// A strict parser for the XML subset junit.xml uses (declaration, elements, attributes in
/// double quotes, text, entities): any malformation is an error.
pub fn parse(xml: &str) -> Result<Elem, String> {
    let body = xml.trim_start();
    let body = match body.strip_prefix("<?xml") {
        Some(r) => &r[r.find("?>").ok_or("unterminated declaration")? + 2..],
        None => body,
    };
    let mut stack: Vec<Elem> = vec![Elem {
        name: String::new(),
        attrs: BTreeMap::new(),
        children: vec![],
        text: String::new(),
    }];
    let mut rest = body;
    while !rest.is_empty() {
        let lt = rest.find('<').unwrap_or(rest.len());
        let text = unescape(&rest[..lt])?;
        stack.last_mut().ok_or("stack")?.text.push_str(&text);
        rest = &rest[lt..];
        if rest.is_empty() {
            break;
        }
        let gt = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let e = stack.pop().ok_or("unbalanced")?;
            if e.name != name.trim() {
                return Err(format!("</{name}> closes <{}>", e.name));
            }
            stack
                .last_mut()
                .ok_or("close without open")?
                .children
                .push(e);
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let (name, mut a) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
        let mut attrs = BTreeMap::new();
        loop {
            a = a.trim_start();
            if a.is_empty() {
                break;
            }
            let eq = a
                .find('=')
                .ok_or(format!("attribute without value in <{name}>"))?;
            let key = a[..eq].trim().to_string();
            let v = a[eq + 1..]
                .trim_start()
                .strip_prefix('"')
                .ok_or("unquoted attribute")?;
            let close = v.find('"').ok_or("unterminated attribute")?;
            if attrs.insert(key.clone(), unescape(&v[..close])?).is_some() {
                return Err(format!("duplicate attribute {key}"));
            }
            a = &v[close + 1..];
        }
        let e = Elem {
            name: name.into(),
            attrs,
            children: vec![],
            text: String::new(),
        };
        if self_closing {
            stack.last_mut().ok_or("stack")?.children.push(e);
        } else {
            stack.push(e);
        }
    }
    let mut doc = stack.pop().ok_or("empty")?;
    if !stack.is_empty() || doc.children.len() != 1 {
        return Err("unclosed elements or several roots".into());
    }
    Ok(doc.children.remove(0))
}

/// Checks the elements and attributes the JUnit schema requires; returns the testcases.
pub fn check_junit(xml: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let root = parse(xml)?;
    let suites: Vec<&Elem> = match root.name.as_str() {
        "testsuites" => root.children.iter().collect(),
        "testsuite" => vec![&root],
        n => return Err(format!("root is <{n}>")),
    };
    let mut cases = vec![];
    for s in suites {
        if s.name != "testsuite" {
            return Err(format!("<{}> inside <testsuites>", s.name));
        }
        for a in ["name", "tests", "failures", "errors", "time"] {
            s.attrs.get(a).ok_or(format!("testsuite without {a}"))?;
        }
        let num = |a: &str| {
            s.attrs[a]
                .parse::<usize>()
                .map_err(|_| format!("testsuite {a} not a number"))
        };
        s.attrs["time"]
            .parse::<f64>()
            .map_err(|_| "testsuite time not a number")?;
        let tcs: Vec<&Elem> = s.children.iter().filter(|c| c.name == "testcase").collect();
        if num("tests")? != tcs.len() {
            return Err("tests ≠ number of testcases".into());
        }
        let count = |k: &str| {
            tcs.iter()
                .filter(|t| t.children.iter().any(|c| c.name == k))
                .count()
        };
        if num("failures")? != count("failure") || num("errors")? != count("error") {
            return Err("failures/errors do not match the testcases".into());
        }
        for t in tcs {
            for a in ["name", "classname", "time"] {
                t.attrs.get(a).ok_or(format!("testcase without {a}"))?;
            }
            t.attrs["time"]
                .parse::<f64>()
                .map_err(|_| "testcase time not a number")?;
            let outcome = t.children.first().map(|c| {
                format!(
                    "{}:{}",
                    c.name,
                    c.attrs.get("message").cloned().unwrap_or_default()
                )
            });
            cases.push((t.attrs["name"].clone(), outcome));
        }
    }
    Ok(cases)
}
