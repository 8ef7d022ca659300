//! Fields past the sample: while the crawler reads the rest of a JSON-lines object to count its
//! records, it scans each line's keys (no parse) against the names the sample saw, and parses
//! only a line that holds a name not seen yet, into the object's schema. A column that first
//! appears in the last record of a large object is in the catalog before any conversion.

use std::collections::HashSet;

use serde_json::Value;

use crate::crawler::infer::Node;

pub(super) struct LateKeys {
    known: HashSet<Vec<u8>>,
    /// The unfinished line at the end of the last chunk.
    carry: Vec<u8>,
    /// Lines that brought new names.
    pub(super) records: u64,
}

impl LateKeys {
    pub(super) fn new(schema: &Node) -> Self {
        let mut known = HashSet::new();
        schema.collect_names(&mut known);
        Self {
            known,
            carry: Vec::new(),
            records: 0,
        }
    }

    /// Scans a chunk of the stream (after the sample's last complete record).
    pub(super) fn feed(&mut self, chunk: &[u8], schema: &mut Node) {
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', chunk) {
            if self.carry.is_empty() {
                self.line(&chunk[start..end], schema);
            } else {
                let mut line = std::mem::take(&mut self.carry);
                line.extend_from_slice(&chunk[start..end]);
                self.line(&line, schema);
            }
            start = end + 1;
        }
        self.carry.extend_from_slice(&chunk[start..]);
    }

    /// The last line, when the stream does not end with a line break.
    pub(super) fn finish(&mut self, schema: &mut Node) {
        let line = std::mem::take(&mut self.carry);
        self.line(&line, schema);
    }

    fn line(&mut self, line: &[u8], schema: &mut Node) {
        if !keys(line).any(|key| !self.known.contains(key)) {
            return;
        }
        // A malformed line is the converter's to quarantine; it brings no column.
        if let Ok(value @ Value::Object(_)) = serde_json::from_slice::<Value>(line) {
            schema.observe(&value, "");
            let mut observed = Node::new();
            observed.observe(&value, "");
            observed.collect_names(&mut self.known);
            self.records += 1;
        }
    }
}

/// The raw bytes of every object key in a line (a string followed by `:`), escapes and all.
fn keys(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        loop {
            let open = at + memchr::memchr(b'"', line.get(at..)?)?;
            let mut close = open + 1;
            loop {
                let found = close + memchr::memchr2(b'"', b'\\', line.get(close..)?)?;
                if line[found] == b'\\' {
                    close = found + 2;
                    continue;
                }
                close = found;
                break;
            }
            at = close + 1;
            let rest = line.get(at..).unwrap_or_default();
            let colon = rest.iter().position(|b| !b.is_ascii_whitespace());
            if colon.is_some_and(|i| rest[i] == b':') {
                return Some(&line[open + 1..close]);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_in_strings_with_escapes_and_nesting() {
        let line = br#"{"a": 1, "b\"c":"x:y", "d" :{"e": [":"]}, "s": "\\"}"#;
        let found: Vec<&[u8]> = keys(line).collect();
        assert_eq!(
            found,
            [&b"a"[..], &br#"b\"c"#[..], &b"d"[..], &b"e"[..], &b"s"[..]]
        );
    }

    #[test]
    fn a_field_first_seen_past_the_sample_is_observed() {
        let mut schema = Node::new();
        schema.observe(&serde_json::json!({"a": 1, "n": {"x": 1}}), "");
        let mut late = LateKeys::new(&schema);
        late.feed(
            b"{\"a\": 2, \"n\": {\"x\": 2}}\n{\"a\": 3, \"co",
            &mut schema,
        );
        late.feed(b"2\": 4.5}\n{\"a\": 4, \"n\": {\"y\": true}}", &mut schema);
        late.finish(&mut schema);
        assert_eq!(late.records, 2);
        let (resolved, _) = schema.resolve_schema();
        let names: Vec<String> = resolved
            .fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect();
        assert_eq!(names[2], "co2: Float64");
        assert!(names[1].contains("\"y\""), "{names:?}");
    }
}
