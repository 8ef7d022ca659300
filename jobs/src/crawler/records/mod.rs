//! Record parsers for the sampled text of each format. Each one feeds complete records to the
//! sampler's [`Sink`], reports malformed ones with their line, and stops at the sample's bounds.

use serde_json::{Map, Value};

use super::sample::{ObjectFailure, Sink};
use super::sniff::{COMBINED_LOG, COMMON_LOG, JsonFraming};

/// How far the parser got through the sample.
pub(super) struct Parsed {
    /// Every byte of the sample was parsed (not stopped by the record bound or a cut record).
    pub complete: bool,
    /// Delimited text: the first row is a header (Glue's rule).
    pub header: bool,
    /// Bytes of the sample the parsed records span.
    pub consumed: usize,
}

/// Line numbers of byte offsets, counted incrementally.
struct Lines<'a> {
    text: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text: text.as_bytes(),
            offset: 0,
            line: 1,
        }
    }

    fn at(&mut self, offset: usize) -> u64 {
        if offset >= self.offset {
            self.line += memchr::memchr_iter(b'\n', &self.text[self.offset..offset]).count() as u64;
        } else {
            self.line -= memchr::memchr_iter(b'\n', &self.text[offset..self.offset]).count() as u64;
        }
        self.offset = offset;
        self.line
    }
}

fn has_more(text: &str) -> bool {
    !text.trim().is_empty()
}

/// JSON records: one per line, back to back, or the elements of one array.
pub(super) fn json(
    text: &str,
    framing: JsonFraming,
    at_end: bool,
    max_record: usize,
    sink: &mut Sink,
) -> Result<Parsed, ObjectFailure> {
    match framing {
        JsonFraming::Lines => lines(text, at_end, max_record, sink, Sink::record_json),
        JsonFraming::Concatenated | JsonFraming::Array | JsonFraming::Separated => {
            stream(text, framing, at_end, max_record, sink)
        }
    }
}

pub(super) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Line-oriented records; a line that fails `parse` is malformed, the next line goes on.
fn lines(
    text: &str,
    at_end: bool,
    max_record: usize,
    sink: &mut Sink,
    mut record: impl FnMut(&mut Sink, &str) -> Result<(), String>,
) -> Result<Parsed, ObjectFailure> {
    let mut rest = text;
    let mut line_number = 0_u64;
    while !rest.is_empty() {
        let consumed = text.len() - rest.len();
        if sink.full() {
            return Ok(Parsed {
                complete: !has_more(rest),
                header: false,
                consumed,
            });
        }
        line_number += 1;
        let (line, next, cut) = match rest.find('\n') {
            Some(end) => (&rest[..end], &rest[end + 1..], false),
            None => (rest, "", !at_end),
        };
        if line.len() > max_record {
            return Err(ObjectFailure::RecordTooLarge {
                line: line_number,
                limit: max_record,
            });
        }
        if cut {
            return Ok(Parsed {
                complete: false,
                header: false,
                consumed,
            });
        }
        let line = line.trim();
        if !line.is_empty()
            && let Err(reason) = record(sink, line)
        {
            sink.malformed(line_number, reason);
        }
        rest = next;
    }
    Ok(Parsed {
        complete: true,
        header: false,
        consumed: text.len(),
    })
}

/// Back-to-back JSON values (`}{`), the elements of one array, or values each followed by a
/// comma, parsed one value at a time so that a sample cut mid-record, or a bad record, loses
/// nothing before it.
fn stream(
    text: &str,
    framing: JsonFraming,
    at_end: bool,
    max_record: usize,
    sink: &mut Sink,
) -> Result<Parsed, ObjectFailure> {
    let bytes = text.as_bytes();
    let mut lines = Lines::new(text);
    // Whitespace and byte order marks, the mark as its three bytes: a byte of it alone may be
    // part of another character (U+FFFD, which a lossy decoding puts in, starts EF BF).
    let skip_ws = |mut pos: usize| {
        loop {
            if bytes.get(pos).is_some_and(u8::is_ascii_whitespace) {
                pos += 1;
            } else if bytes[pos.min(bytes.len())..].starts_with(&[0xef, 0xbb, 0xbf]) {
                pos += 3;
            } else {
                return pos;
            }
        }
    };
    let array = framing == JsonFraming::Array;
    let separated = framing == JsonFraming::Separated;
    let mut pos = skip_ws(0);
    if array {
        pos = skip_ws(pos + 1); // the opening '['
        if bytes.get(pos) == Some(&b']') {
            return Ok(Parsed {
                complete: true,
                header: false,
                consumed: text.len(),
            });
        }
    }
    loop {
        pos = skip_ws(pos);
        if pos >= bytes.len() {
            return Ok(Parsed {
                complete: at_end && !array,
                header: false,
                consumed: pos,
            });
        }
        if sink.full() {
            return Ok(Parsed {
                complete: false,
                header: false,
                consumed: pos,
            });
        }
        let mut values = serde_json::Deserializer::from_str(&text[pos..]).into_iter::<Value>();
        match values.next() {
            Some(Ok(value)) => {
                let end = pos + values.byte_offset();
                if end - pos > max_record {
                    return Err(ObjectFailure::RecordTooLarge {
                        line: lines.at(pos),
                        limit: max_record,
                    });
                }
                match value {
                    Value::Object(map) => sink.record(Value::Object(map)),
                    other => sink.malformed(
                        lines.at(pos),
                        format!("expected a JSON object, found {}", json_kind(&other)),
                    ),
                }
                pos = skip_ws(end);
                if separated && bytes.get(pos) == Some(&b',') {
                    pos += 1;
                }
                if array {
                    match bytes.get(pos) {
                        Some(b',') => pos += 1,
                        Some(b']') => {
                            return Ok(Parsed {
                                complete: !has_more(&text[pos + 1..]),
                                header: false,
                                consumed: pos,
                            });
                        }
                        None => {
                            return Ok(Parsed {
                                complete: false,
                                header: false,
                                consumed: pos,
                            });
                        }
                        Some(_) => {
                            sink.malformed(
                                lines.at(pos),
                                "expected ',' or ']' between array elements".into(),
                            );
                            return Ok(Parsed {
                                complete: true,
                                header: false,
                                consumed: pos,
                            });
                        }
                    }
                }
            }
            Some(Err(err)) if err.is_eof() && !at_end => {
                if bytes.len() - pos > max_record {
                    return Err(ObjectFailure::RecordTooLarge {
                        line: lines.at(pos),
                        limit: max_record,
                    });
                }
                return Ok(Parsed {
                    complete: false,
                    header: false,
                    consumed: pos,
                });
            }
            Some(Err(err)) => {
                let line = lines.at(pos) + err.line().saturating_sub(1) as u64;
                sink.malformed(line, err.to_string());
                // Resynchronise at the next record boundary.
                let boundary: &[u8] = if separated { b"}," } else { b"}{" };
                match memchr::memmem::find(&bytes[pos + 1..], boundary) {
                    Some(offset) if separated => pos = pos + 1 + offset + 2,
                    Some(offset) if !array => pos = pos + 1 + offset + 1,
                    _ => {
                        return Ok(Parsed {
                            complete: true,
                            header: false,
                            consumed: text.len(),
                        });
                    }
                }
            }
            None => {
                return Ok(Parsed {
                    complete: at_end,
                    header: false,
                    consumed: pos,
                });
            }
        }
    }
}

/// Apache common or combined log lines, with Grok's COMBINEDAPACHELOG field names.
pub(super) fn apache_log(
    text: &str,
    combined: bool,
    at_end: bool,
    max_record: usize,
    sink: &mut Sink,
) -> Result<Parsed, ObjectFailure> {
    lines(text, at_end, max_record, sink, |sink, line| {
        sink.record(Value::Object(apache_record(line, combined)?));
        Ok(())
    })
}

/// One line of an Apache common or combined log as a record (`clientip`, `timestamp` in
/// RFC 3339, `verb`, `request`, `response`, `bytes`, ...), or why it is not one. Conversion
/// reads Apache log landings with it too.
pub fn apache_record(line: &str, combined: bool) -> Result<Map<String, Value>, String> {
    let regex = if combined {
        &*COMBINED_LOG
    } else {
        &*COMMON_LOG
    };
    let format_name = if combined { "combined" } else { "common" };
    let caps = regex
        .captures(line)
        .ok_or_else(|| format!("line does not match the Apache {format_name} log format"))?;
    let mut record = Map::new();
    let text_field = |i: usize| Value::String(caps[i].to_owned());
    record.insert("clientip".into(), text_field(1));
    record.insert("ident".into(), text_field(2));
    record.insert("auth".into(), text_field(3));
    let timestamp = chrono::DateTime::parse_from_str(&caps[4], "%d/%b/%Y:%H:%M:%S %z")
        .map(|t| Value::String(t.to_rfc3339()))
        .map_err(|err| format!("timestamp {:?}: {err}", &caps[4]))?;
    record.insert("timestamp".into(), timestamp);
    let mut request = caps[5].splitn(3, ' ');
    record.insert(
        "verb".into(),
        request
            .next()
            .map_or(Value::Null, |s| Value::String(s.into())),
    );
    record.insert(
        "request".into(),
        request
            .next()
            .map_or(Value::Null, |s| Value::String(s.into())),
    );
    record.insert(
        "httpversion".into(),
        request.next().map_or(Value::Null, |s| {
            Value::String(s.trim_start_matches("HTTP/").into())
        }),
    );
    record.insert(
        "response".into(),
        Value::from(caps[6].parse::<i64>().unwrap_or_default()),
    );
    record.insert(
        "bytes".into(),
        caps[7].parse::<i64>().map_or(Value::Null, Value::from),
    );
    if combined {
        record.insert("referrer".into(), text_field(8));
        record.insert("agent".into(), text_field(9));
    }
    Ok(record)
}

/// A CSV/TSV cell as the JSON value inference should see.
fn cell_value(cell: &str) -> Value {
    let cell = cell.trim();
    if cell.is_empty() {
        Value::Null
    } else if let Ok(int) = cell.parse::<i64>() {
        Value::from(int)
    } else if let Some(number) = cell
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .and_then(serde_json::Number::from_f64)
    {
        Value::Number(number)
    } else if cell.eq_ignore_ascii_case("true") || cell.eq_ignore_ascii_case("false") {
        Value::Bool(cell.eq_ignore_ascii_case("true"))
    } else {
        Value::String(cell.to_owned())
    }
}

/// Delimited text. Glue's header rule: the first row is a header when all its cells are
/// strings, unique and non-empty, and some cell of a later row is not a string.
pub(super) fn delimited(
    text: &str,
    delimiter: u8,
    at_end: bool,
    sink: &mut Sink,
) -> Result<Parsed, ObjectFailure> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows: Vec<(u64, usize, csv::StringRecord)> = Vec::new();
    let mut complete = at_end;
    for row in reader.records() {
        let Ok(row) = row else { break };
        let (line, start) = row
            .position()
            .map_or((0, 0), |p| (p.line(), p.byte() as usize));
        rows.push((line, start, row));
        if rows.len() > sink.capacity() {
            complete = false;
            break;
        }
    }
    let mut consumed = text.len();
    if !at_end && rows.pop().is_some() {
        // The last row of a bounded sample may be cut short.
        consumed = reader.position().byte() as usize;
    }
    let Some((_, _, first)) = rows.first() else {
        return Ok(Parsed {
            complete,
            header: false,
            consumed,
        });
    };
    let is_string = |cell: &str| matches!(cell_value(cell), Value::String(_));
    let first_all_strings = first.iter().all(is_string);
    let unique = first.iter().collect::<std::collections::HashSet<_>>().len() == first.len();
    let later_typed = rows[1..].iter().any(|(_, _, row)| {
        row.iter()
            .any(|cell| !is_string(cell) && !cell.trim().is_empty())
    });
    let header = first_all_strings && unique && later_typed;
    let names: Vec<String> = if header {
        first.iter().map(|cell| cell.trim().to_owned()).collect()
    } else {
        (0..first.len()).map(|i| format!("col{i}")).collect()
    };
    for (line, start, row) in rows.iter().skip(usize::from(header)) {
        if sink.full() {
            complete = false;
            consumed = *start;
            break;
        }
        if row.len() != names.len() {
            sink.malformed(
                *line,
                format!("row has {} fields, expected {}", row.len(), names.len()),
            );
            continue;
        }
        let record: Map<String, Value> = names
            .iter()
            .zip(row.iter())
            .map(|(name, cell)| (name.clone(), cell_value(cell)))
            .collect();
        sink.record(Value::Object(record));
    }
    Ok(Parsed {
        complete,
        header,
        consumed,
    })
}

#[cfg(test)]
mod tests;
