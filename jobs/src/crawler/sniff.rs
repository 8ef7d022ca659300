//! Sniffing: compression from magic bytes and format from the decompressed text, never from
//! file extensions.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// Compression of a landed object, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Zip,
    Snappy,
}

impl Compression {
    /// Reads the magic bytes at the start of an object.
    pub fn sniff(head: &[u8]) -> Self {
        const SNAPPY_FRAMING: &[u8] = b"\xff\x06\x00\x00sNaPpY";
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(b"PK\x03\x04") {
            Compression::Zip
        } else if head.starts_with(SNAPPY_FRAMING) {
            Compression::Snappy
        } else {
            Compression::None
        }
    }

    /// The catalog's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Zip => "zip",
            Compression::Snappy => "snappy",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Format of the (decompressed) content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// One JSON record per line.
    Ndjson,
    /// JSON records back to back (`}{`), Firehose's default.
    ConcatenatedJson,
    /// One JSON array of records.
    JsonArray,
    /// JSON records separated by commas (an AWS IoT rule's Firehose action with `separator: ","`).
    SeparatedJson,
    /// Delimited text; `header` follows Glue's rule.
    Csv {
        delimiter: u8,
        header: bool,
    },
    ApacheCommon,
    ApacheCombined,
    Parquet,
    /// Firehose `processing-failed` envelopes (JSON records with `errorCode` and `rawData`).
    FirehoseErrors,
}

impl Format {
    /// The catalog's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::ConcatenatedJson => "json_concatenated",
            Format::JsonArray => "json_array",
            Format::SeparatedJson => "json_comma_separated",
            Format::Csv {
                delimiter: b'\t', ..
            } => "tsv",
            Format::Csv { .. } => "csv",
            Format::ApacheCommon => "apache_common",
            Format::ApacheCombined => "apache_combined",
            Format::Parquet => "parquet",
            Format::FirehoseErrors => "firehose_errors",
        }
    }

    /// Formats of one family can share a table (NDJSON and concatenated JSON, say).
    pub fn family(self) -> &'static str {
        match self {
            Format::Ndjson
            | Format::ConcatenatedJson
            | Format::JsonArray
            | Format::SeparatedJson => "json",
            Format::Csv {
                delimiter: b'\t', ..
            } => "tsv",
            Format::Csv {
                delimiter: b'|', ..
            } => "psv",
            Format::Csv {
                delimiter: b';', ..
            } => "ssv",
            Format::Csv { .. } => "csv",
            Format::ApacheCommon | Format::ApacheCombined => "apache_log",
            Format::Parquet => "parquet",
            Format::FirehoseErrors => "firehose_errors",
        }
    }
}

/// The family of a stored format name (see [`Format::family`]).
pub fn family_of(format_name: &str) -> &str {
    match format_name {
        "ndjson" | "json_concatenated" | "json_array" => "json",
        "apache_common" | "apache_combined" => "apache_log",
        other => other,
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How JSON records are framed in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonFraming {
    Lines,
    Concatenated,
    Array,
    /// Records with a comma after each (`{..},{..},` or one per line, each line ending `,`).
    Separated,
}

/// Apache common log format.
pub static COMMON_LOG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^(\S+) (\S+) (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\d+|-)$"#)
        .expect("valid regex")
});

/// Apache combined log format (common plus referrer and agent).
pub static COMBINED_LOG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^(\S+) (\S+) (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"$"#)
        .expect("valid regex")
});

/// The text-format decision for a sample that starts with `text` (already UTF-8 checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    Json(JsonFraming),
    ApacheCommon,
    ApacheCombined,
    Delimited(u8),
    Unrecognised,
}

/// Decides the text format from the sample's first lines; `at_end` says the sample holds the
/// whole object (otherwise its last line may be cut short and is not judged).
pub fn sniff_text(text: &str, at_end: bool) -> TextFormat {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    match trimmed.as_bytes().first() {
        Some(b'[') => return TextFormat::Json(JsonFraming::Array),
        Some(b'{') => return TextFormat::Json(json_framing(trimmed)),
        _ => {}
    }
    let lines: Vec<&str> = trimmed
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(20)
        .collect();
    // The last line of a bounded sample may be cut short: judge by the complete ones.
    let judged = if lines.len() > 1 && !at_end {
        &lines[..lines.len() - 1]
    } else {
        &lines[..]
    };
    if judged.is_empty() {
        return TextFormat::Unrecognised;
    }
    let share =
        |re: &Regex| judged.iter().filter(|l| re.is_match(l)).count() * 10 >= judged.len() * 8;
    if share(&COMBINED_LOG) {
        return TextFormat::ApacheCombined;
    }
    if share(&COMMON_LOG) {
        return TextFormat::ApacheCommon;
    }
    delimiter(judged).map_or(TextFormat::Unrecognised, TextFormat::Delimited)
}

/// NDJSON when the first record is followed by a line break, concatenated when `}{` follow.
/// When the first record itself is malformed, a `}{` inside the first line decides.
fn json_framing(text: &str) -> JsonFraming {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde::de::IgnoredAny>();
    match stream.next() {
        Some(Ok(_)) => {
            let rest = &text[stream.byte_offset()..];
            let gap_end = rest
                .find(|c: char| !c.is_whitespace())
                .unwrap_or(rest.len());
            if !rest[..gap_end].contains('\n') && rest[gap_end..].starts_with('{') {
                return JsonFraming::Concatenated;
            }
            if rest[gap_end..].starts_with(',') {
                return JsonFraming::Separated;
            }
            JsonFraming::Lines
        }
        _ => {
            let first_line = text.split('\n').next().unwrap_or(text);
            if memchr::memmem::find(first_line.as_bytes(), b"}{").is_some() {
                JsonFraming::Concatenated
            } else {
                JsonFraming::Lines
            }
        }
    }
}

/// A delimiter that splits every judged line into the same number (> 1) of fields.
fn delimiter(lines: &[&str]) -> Option<u8> {
    let mut best: Option<(u8, usize)> = None;
    for candidate in [b',', b'\t', b'|', b';'] {
        let text = lines.join("\n");
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(candidate)
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let Ok(counts) = reader
            .records()
            .map(|record| record.map(|r| r.len()))
            .collect::<Result<Vec<usize>, _>>()
        else {
            continue; // unbalanced quotes and the like: not this delimiter
        };
        let Some(&first) = counts.first() else {
            continue;
        };
        if first > 1 && counts.iter().all(|&c| c == first) && best.is_none_or(|(_, n)| first > n) {
            best = Some((candidate, first));
        }
    }
    best.map(|(delimiter, _)| delimiter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_comes_from_magic_bytes() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"PK\x03\x04...."), Compression::Zip);
        assert_eq!(
            Compression::sniff(b"\xff\x06\x00\x00sNaPpY"),
            Compression::Snappy
        );
        assert_eq!(Compression::sniff(b"{\"a\":1}"), Compression::None);
    }

    #[test]
    fn text_formats_are_sniffed_from_content() {
        let check =
            |text: &str, expect: TextFormat| assert_eq!(sniff_text(text, true), expect, "{text:?}");
        check(
            "{\"a\":1}\n{\"a\":2}\n",
            TextFormat::Json(JsonFraming::Lines),
        );
        check(
            "{\"a\":1}{\"a\":2}",
            TextFormat::Json(JsonFraming::Concatenated),
        );
        check(
            "{\"a\":1} {\"a\":2}",
            TextFormat::Json(JsonFraming::Concatenated),
        );
        check("{\"a\":1}", TextFormat::Json(JsonFraming::Lines));
        check(
            "{\"a\":NaN}{\"a\":2}",
            TextFormat::Json(JsonFraming::Concatenated),
        );
        check(
            "{\"a\":NaN}\n{\"a\":2}\n",
            TextFormat::Json(JsonFraming::Lines),
        );
        check("\u{feff} [{\"a\":1}]", TextFormat::Json(JsonFraming::Array));
        check(
            "{\"a\":1},{\"a\":2},",
            TextFormat::Json(JsonFraming::Separated),
        );
        check(
            "{\"a\":1},\n{\"a\":2}\n",
            TextFormat::Json(JsonFraming::Separated),
        );
        check("a,b,c\n1,2,3\n4,5,6\n", TextFormat::Delimited(b','));
        check("a\tb\n1\t2\n", TextFormat::Delimited(b'\t'));
        check("x|y|z\n1|2|3\n", TextFormat::Delimited(b'|'));
        let common =
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326"#;
        check(&format!("{common}\n{common}\n"), TextFormat::ApacheCommon);
        let combined = format!(r#"{common} "http://x/" "Mozilla/4.08""#);
        check(
            &format!("{combined}\n{combined}\n"),
            TextFormat::ApacheCombined,
        );
        check(
            "just some prose\nwith no structure\n",
            TextFormat::Unrecognised,
        );
        check(
            "dear diary,\ntoday the sensor broke\n",
            TextFormat::Unrecognised,
        );
        // A bounded sample's last line may be cut: only complete lines are judged.
        assert_eq!(
            sniff_text("a,b\n1,2\n3", false),
            TextFormat::Delimited(b',')
        );
    }
}
