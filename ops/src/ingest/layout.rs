//! Where a delivery stream's objects land, as Firehose names them (pure): the prefix with its
//! `!{timestamp:...}`, `!{firehose:error-output-type}` and `!{firehose:random-string}`
//! expressions (without any, Firehose's `YYYY/MM/DD/HH/` follows the prefix), then
//! `<stream>-<version>-YYYY-MM-DD-HH-MM-SS-<random>` and `.gz` when compressed. Times are the
//! arrival of the object's oldest record, in UTC, so that a key computed again (a delivery
//! replayed after a crash) is the same key.

use chrono::{DateTime, Utc};

/// A prefix, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// A `chrono` format string translated from Java's `DateTimeFormatter` pattern.
    Timestamp(String),
    ErrorOutputType,
    RandomString,
}

impl Prefix {
    /// Parses `text`; the error names the expression that is refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("!{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| format!("unclosed expression at {:?}", &rest[start..]))?;
            let expression = &rest[start + 2..start + end];
            parts.push(match expression.split_once(':') {
                Some(("timestamp", pattern)) => Part::Timestamp(java_pattern(pattern)?),
                Some(("firehose", "error-output-type")) => Part::ErrorOutputType,
                Some(("firehose", "random-string")) => Part::RandomString,
                Some(("partitionKeyFromQuery" | "partitionKeyFromLambda", _)) => {
                    return Err(format!(
                        "!{{{expression}}}: dynamic partitioning is not supported; partition by \
                         the records' own time at conversion instead"
                    ));
                }
                _ => {
                    return Err(format!(
                        "!{{{expression}}} is not an expression Firehose has"
                    ));
                }
            });
            rest = &rest[start + end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// Whether the prefix says where the time goes (else `YYYY/MM/DD/HH/` is appended).
    pub fn has_timestamp(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Timestamp(_)))
    }

    /// Whether it names the error output type.
    pub fn has_error_output_type(&self) -> bool {
        self.parts.contains(&Part::ErrorOutputType)
    }

    /// The prefix for an object whose oldest record arrived `at`: `error_type` fills
    /// `!{firehose:error-output-type}`, `random` fills `!{firehose:random-string}`.
    pub fn render(&self, at: DateTime<Utc>, error_type: &str, random: &str) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Timestamp(format) => out.push_str(&at.format(format).to_string()),
                Part::ErrorOutputType => out.push_str(error_type),
                Part::RandomString => out.push_str(random),
            }
        }
        if !self.has_timestamp() {
            if !out.is_empty() && !out.ends_with('/') {
                out.push('/');
            }
            out.push_str(&at.format("%Y/%m/%d/%H/").to_string());
        }
        out
    }
}

/// Java's `DateTimeFormatter` letters that Firehose prefixes use, as chrono's.
fn java_pattern(pattern: &str) -> Result<String, String> {
    if pattern.is_empty() {
        return Err("!{timestamp:} needs a pattern (yyyy/MM/dd/HH)".into());
    }
    let mut out = String::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted text is literal; '' is a quote.
            let close = chars[i + 1..]
                .iter()
                .position(|&d| d == '\'')
                .ok_or_else(|| format!("!{{timestamp:{pattern}}}: an unclosed quote"))?;
            let literal: String = chars[i + 1..i + 1 + close].iter().collect();
            out.push_str(&if literal.is_empty() {
                "'".to_owned()
            } else {
                literal.replace('%', "%%")
            });
            i += close + 2;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&d| d == c).count();
        if c.is_ascii_alphabetic() {
            let token: String = chars[i..i + run].iter().collect();
            out.push_str(match token.as_str() {
                "yyyy" | "uuuu" => "%Y",
                "yy" | "uu" => "%y",
                "MM" => "%m",
                "dd" => "%d",
                "HH" => "%H",
                "mm" => "%M",
                "ss" => "%S",
                "DDD" => "%j",
                _ => {
                    return Err(format!(
                        "!{{timestamp:{pattern}}}: {token:?} is not a pattern letter sluice \
                         knows (yyyy, yy, MM, dd, HH, mm, ss, DDD)"
                    ));
                }
            });
        } else if c == '%' {
            out.push_str(&"%%".repeat(run));
        } else {
            out.extend(std::iter::repeat_n(c, run));
        }
        i += run;
    }
    Ok(out)
}

/// A new object's whole key: the prefix rendered for the arrival (ms) of its oldest record,
/// then its name with a fresh random part.
pub fn new_object_key(
    prefix: &Prefix,
    stream: &str,
    version: i64,
    arrival_ms: i64,
    gzip: bool,
) -> String {
    let at = DateTime::from_timestamp_millis(arrival_ms).unwrap_or_default();
    let random = uuid::Uuid::new_v4();
    format!(
        "{}{}",
        prefix.render(at, "", &random.simple().to_string()[..11]),
        object_name(stream, version, at, &random.to_string(), gzip)
    )
}

/// An object's name after its prefix: `<stream>-<version>-YYYY-MM-DD-HH-MM-SS-<random>`, and
/// `.gz` when gzipped.
pub fn object_name(
    stream: &str,
    version: i64,
    at: DateTime<Utc>,
    random: &str,
    gzip: bool,
) -> String {
    format!(
        "{stream}-{version}-{}-{random}{}",
        at.format("%Y-%m-%d-%H-%M-%S"),
        if gzip { ".gz" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        "2026-12-05T03:04:05Z".parse().unwrap()
    }

    #[test]
    fn prefixes_render_as_firehose_renders_them() {
        let check = |prefix: &str, error: &str, expect: &str| {
            let parsed = Prefix::parse(prefix).unwrap();
            assert_eq!(parsed.render(at(), error, "r4nd"), expect, "{prefix}");
        };
        check("landing/telemetry/", "", "landing/telemetry/2026/12/05/03/");
        check("landing/telemetry", "", "landing/telemetry/2026/12/05/03/");
        check("", "", "2026/12/05/03/");
        check(
            "raw/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/",
            "",
            "raw/year=2026/month=12/day=05/",
        );
        check(
            "raw/!{timestamp:yyyy-MM-dd'T'HH}/",
            "",
            "raw/2026-12-05T03/",
        );
        check(
            "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/",
            "processing-failed",
            "errors/processing-failed/2026/12/05/",
        );
        check(
            "landing/errors/",
            "processing-failed",
            "landing/errors/2026/12/05/03/",
        );
        check("x/!{firehose:random-string}/", "", "x/r4nd/2026/12/05/03/");
        assert_eq!(
            object_name("telemetry", 1, at(), "0f8e", true),
            "telemetry-1-2026-12-05-03-04-05-0f8e.gz"
        );
    }

    #[test]
    fn unknown_expressions_are_refused_by_name() {
        for (prefix, says) in [
            ("a/!{timestamp:yyyy", "unclosed"),
            ("a/!{timestamp:}/", "needs a pattern"),
            ("a/!{timestamp:yyyy-QQ}/", "\"QQ\""),
            ("a/!{partitionKeyFromQuery:device}/", "dynamic partitioning"),
            ("a/!{firehose:nope}/", "not an expression"),
        ] {
            let err = Prefix::parse(prefix).unwrap_err();
            assert!(err.contains(says), "{prefix}: {err}");
        }
    }
}
