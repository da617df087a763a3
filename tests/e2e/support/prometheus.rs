//! A strict reader of the Prometheus text exposition format (version 0.0.4), for the tests of
//! `/metrics`. Written here because the parser crate at hand reads a label value holding `}`
//! (our route templates: `/payments/{id}`) wrongly; this one follows the format's grammar:
//! quoted label values with `\\`, `\"` and `\n` escapes, `# HELP` / `# TYPE` lines, a type
//! declared for every sample's family, values that are floats (or `+Inf`, `-Inf`, `NaN`).

use std::collections::{BTreeMap, HashMap};

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed page.
#[derive(Clone, Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// `# HELP` text by family name.
    pub help: HashMap<String, String>,
    /// `# TYPE` by family name.
    pub types: HashMap<String, String>,
}

impl Exposition {
    /// The sum of the samples named `name` whose labels include `labels` (0 when none).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Whether a sample named `name` with `labels` exists.
    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.matching(name, labels).next().is_some()
    }

    /// Every value the label `label` takes.
    pub fn label_values(&self, label: &str) -> Vec<String> {
        let mut values: Vec<String> = self
            .samples
            .iter()
            .filter_map(|s| s.labels.get(label).cloned())
            .collect();
        values.sort();
        values.dedup();
        values
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

/// Parse `text`, or say which line breaks the format and why.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut page = Exposition::default();
    for (n, line) in text.lines().enumerate() {
        let fail = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("HELP"), Some(name), Some(help)) => {
                    check_name(name).map_err(|e| fail(&e))?;
                    page.help.insert(name.into(), help.into());
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    check_name(name).map_err(|e| fail(&e))?;
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(fail("unknown type"));
                    }
                    if page.types.insert(name.into(), kind.into()).is_some() {
                        return Err(fail("second TYPE for one family"));
                    }
                }
                (Some("HELP" | "TYPE"), _, _) => return Err(fail("incomplete HELP/TYPE")),
                _ => {} // Any other comment.
            }
            continue;
        }
        let sample = sample(line).map_err(|e| fail(&e))?;
        let family = family_of(&sample.name, &page.types);
        if !page.types.contains_key(&family) {
            return Err(fail("sample before its family's TYPE"));
        }
        page.samples.push(sample);
    }
    Ok(page)
}

/// The family a sample belongs to: histogram and summary samples carry suffixes.
fn family_of(name: &str, types: &HashMap<String, String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types
                .get(base)
                .is_some_and(|t| t == "histogram" || t == "summary")
        {
            return base.to_string();
        }
    }
    name.to_string()
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("bad metric name {name:?}"))
    }
}

/// `name{label="value",...} value [timestamp]`.
fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        loop {
            // Skip to a label name, or the end of the set.
            match chars.peek() {
                Some((i, '}')) => {
                    rest = &inner[i + 1..];
                    break;
                }
                Some(_) => {}
                None => return Err("unterminated label set".into()),
            }
            let start = chars.peek().map(|(i, _)| *i).unwrap_or(0);
            let mut end = start;
            while let Some((i, c)) = chars.peek().copied() {
                if c == '=' {
                    end = i;
                    break;
                }
                chars.next();
            }
            let key = &inner[start..end];
            check_name(key).map_err(|_| format!("bad label name {key:?}"))?;
            if chars.next().map(|(_, c)| c) != Some('=')
                || chars.next().map(|(_, c)| c) != Some('"')
            {
                return Err(format!("label {key} is not followed by =\""));
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some(c) => value.push(c),
                    None => return Err("unterminated label value".into()),
                }
            }
            if labels.insert(key.to_string(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
            if let Some((_, ',')) = chars.peek() {
                chars.next();
            }
        }
    }
    let mut fields = rest.split_whitespace();
    let value = match fields.next().ok_or("no value")? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse::<f64>().map_err(|_| format!("value {v:?}"))?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().map_err(|_| format!("timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err("text after the value".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

#[test]
fn reads_templates_escapes_and_refuses_broken_lines() {
    let page = parse(
        "# HELP x_total Things.\n# TYPE x_total counter\n\
         x_total{route=\"/payments/{id}\",q=\"a\\\"b\\\\c\"} 3\n\
         # TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 0.5\n",
    )
    .unwrap();
    assert_eq!(page.value("x_total", &[("route", "/payments/{id}")]), 3.0);
    assert!(page.has("x_total", &[("q", "a\"b\\c")]));
    assert_eq!(page.value("h_count", &[]), 2.0);
    assert_eq!(page.help["x_total"], "Things.");
    for broken in [
        "y 1\n",
        "# TYPE y counter\ny{a=\"1} 1\n",
        "# TYPE y counter\ny{a=1} 1\n",
        "# TYPE y counter\ny one\n",
        "# TYPE y counter\ny{a=\"1\"} 1 2 3\n",
        "# TYPE y gaugex\n",
    ] {
        assert!(parse(broken).is_err(), "{broken:?} accepted");
    }
}
