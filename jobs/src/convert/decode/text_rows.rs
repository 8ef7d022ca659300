//! Line-oriented landings (CSV, TSV, Apache logs): rows become JSON lines typed by the table's
//! schema, so that the JSON decoder reads them; the quarantine points back at the source's lines.

use arrow::datatypes::{DataType, Schema};
use serde_json::Value;

use super::{Decoded, Quarantined};

/// How the objects of a line-oriented (not JSON) table are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// CSV or TSV rows with this delimiter.
    Delimited(u8),
    /// Apache common or combined log lines, read as the crawler reads them.
    ApacheLog { combined: bool },
}

impl LineFormat {
    /// The format of a table as the crawler recorded it; `None` for JSON tables.
    pub fn of_table(table: &crate::catalog::TableInfo) -> Option<Self> {
        let recorded = table.properties["delimiter"]
            .as_str()
            .and_then(|d| d.bytes().next());
        match table.format.as_str() {
            "csv" => Some(Self::Delimited(recorded.unwrap_or(b','))),
            "tsv" => Some(Self::Delimited(recorded.unwrap_or(b'\t'))),
            "apache_common" => Some(Self::ApacheLog { combined: false }),
            "apache_combined" => Some(Self::ApacheLog { combined: true }),
            _ => None,
        }
    }

    /// An object's text as JSON lines typed by `schema`.
    pub fn to_json(self, text: &[u8], schema: &Schema) -> TextRows {
        match self {
            Self::Delimited(delimiter) => delimited_to_json(text, schema, delimiter),
            Self::ApacheLog { combined } => apache_log_to_json(text, combined),
        }
    }
}

/// A line-oriented object as JSON lines, so that the JSON decoder reads it against the table's
/// schema: one JSON object per row, its source line kept for quarantine.
pub struct TextRows {
    /// One JSON object per well-formed row, newline-separated.
    pub json: Vec<u8>,
    /// The source line and byte offset of each JSON line.
    pub positions: Vec<(u64, usize)>,
    /// Rows that could not become records (wrong number of fields), with why.
    pub rejected: Vec<(u64, usize, String, String)>,
}

/// Turns delimited text into JSON lines typed by `schema`. Columns are the header's names when the first row is exactly the schema's columns, else
/// `col0`, `col1`, ... as the crawler names them. Empty cells are null; cells of numeric and
/// boolean columns are numbers and booleans when they parse (otherwise strings, which the
/// decoder then quarantines with its reason); other cells are strings.
pub fn delimited_to_json(text: &[u8], schema: &Schema, delimiter: u8) -> TextRows {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text);
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut out = TextRows {
        json: Vec::new(),
        positions: Vec::new(),
        rejected: Vec::new(),
    };
    let mut names: Option<Vec<String>> = None;
    for row in reader.records() {
        let row = match row {
            Ok(row) => row,
            Err(err) => {
                let (line, offset) = err
                    .position()
                    .map_or((0, 0), |p| (p.line(), p.byte() as usize));
                out.rejected.push((
                    line,
                    offset,
                    format!("unreadable row: {err}"),
                    String::new(),
                ));
                continue;
            }
        };
        let (line, offset) = row
            .position()
            .map_or((0, 0), |p| (p.line(), p.byte() as usize));
        let names = match &names {
            Some(names) => names,
            None => {
                let first: Vec<String> = row.iter().map(|c| c.trim().to_owned()).collect();
                let header = first.iter().map(String::as_str).eq(columns.iter().copied());
                let chosen = if header {
                    first
                } else {
                    (0..row.len()).map(|i| format!("col{i}")).collect()
                };
                names = Some(chosen);
                if header {
                    continue;
                }
                names.as_ref().expect("just set")
            }
        };
        if row.len() != names.len() {
            let raw = row
                .iter()
                .collect::<Vec<_>>()
                .join(&(delimiter as char).to_string());
            out.rejected.push((
                line,
                offset,
                format!("row has {} fields, expected {}", row.len(), names.len()),
                raw,
            ));
            continue;
        }
        let mut record = serde_json::Map::new();
        for (name, cell) in names.iter().zip(row.iter()) {
            let cell = cell.trim();
            let kind = schema
                .field_with_name(name)
                .map(|f| f.data_type().clone())
                .ok();
            let value = if cell.is_empty() {
                Value::Null
            } else {
                match kind {
                    Some(t) if t.is_integer() => cell
                        .parse::<i64>()
                        .map_or_else(|_| Value::String(cell.to_owned()), Value::from),
                    Some(t) if t.is_floating() => cell
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map_or_else(|| Value::String(cell.to_owned()), Value::Number),
                    Some(DataType::Boolean) => match cell.to_ascii_lowercase().as_str() {
                        "true" => Value::Bool(true),
                        "false" => Value::Bool(false),
                        _ => Value::String(cell.to_owned()),
                    },
                    _ => Value::String(cell.to_owned()),
                }
            };
            record.insert(name.clone(), value);
        }
        serde_json::to_writer(&mut out.json, &Value::Object(record)).expect("writes to memory");
        out.json.push(b'\n');
        out.positions.push((line, offset));
    }
    out
}

/// Apache log lines as JSON lines; a line that does not match the format, or whose time does not
/// parse, is rejected with why (blank lines are no records).
pub fn apache_log_to_json(text: &[u8], combined: bool) -> TextRows {
    let mut out = TextRows {
        json: Vec::new(),
        positions: Vec::new(),
        rejected: Vec::new(),
    };
    let mut offset = 0;
    for (line_number, line) in (1..).zip(text.split(|&b| b == b'\n')) {
        let start = offset;
        offset += line.len() + 1;
        let line = String::from_utf8_lossy(line);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match crate::crawler::records::apache_record(line, combined) {
            Ok(record) => {
                serde_json::to_writer(&mut out.json, &Value::Object(record))
                    .expect("writes to memory");
                out.json.push(b'\n');
                out.positions.push((line_number, start));
            }
            Err(reason) => out
                .rejected
                .push((line_number, start, reason, line.to_owned())),
        }
    }
    out
}

impl TextRows {
    /// Points the quarantine of a decoded object back at the source's lines and adds the rows
    /// that never became records, so that read = written + quarantined still holds.
    pub fn restore(self, decoded: &mut Decoded, source_key: &str) {
        for record in &mut decoded.quarantined {
            if let Some((line, offset)) = (record.line as usize)
                .checked_sub(1)
                .and_then(|i| self.positions.get(i))
            {
                record.line = *line;
                record.byte_offset = *offset;
            }
        }
        decoded.records_read += self.rejected.len() as u64;
        for (line, byte_offset, reason, record) in self.rejected {
            decoded.quarantined.push(Quarantined {
                source_key: source_key.to_owned(),
                line,
                byte_offset,
                reason,
                record,
            });
        }
    }
}
