//! Delimited landings (CSV, TSV): rows become JSON lines typed by the table's schema, so that
//! the JSON decoder reads them; the quarantine points back at the CSV's lines.

use arrow::datatypes::{DataType, Schema};
use serde_json::Value;

use super::{Decoded, Quarantined};

/// A delimited (CSV, TSV) object as JSON lines, so that the JSON decoder reads it against the
/// table's schema: one JSON object per row, its CSV line kept for quarantine.
pub struct Delimited {
    /// One JSON object per well-formed row, newline-separated.
    pub json: Vec<u8>,
    /// The CSV line and byte offset of each JSON line.
    pub positions: Vec<(u64, usize)>,
    /// Rows that could not become records (wrong number of fields), with why.
    pub rejected: Vec<(u64, usize, String, String)>,
}

/// Turns delimited text into JSON lines typed by `schema`. Columns are the header's names when the first row is exactly the schema's columns, else
/// `col0`, `col1`, ... as the crawler names them. Empty cells are null; cells of numeric and
/// boolean columns are numbers and booleans when they parse (otherwise strings, which the
/// decoder then quarantines with its reason); other cells are strings.
pub fn delimited_to_json(text: &[u8], schema: &Schema, delimiter: u8) -> Delimited {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text);
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut out = Delimited {
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

impl Delimited {
    /// Points the quarantine of a decoded object back at the CSV's lines and adds the rows
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

/// The delimiter of a delimited (CSV, TSV) table, as the crawler recorded it; None otherwise.
pub fn table_delimiter(table: &crate::catalog::TableInfo) -> Option<u8> {
    let recorded = table.properties["delimiter"]
        .as_str()
        .and_then(|d| d.bytes().next());
    match table.format.as_str() {
        "csv" => Some(recorded.unwrap_or(b',')),
        "tsv" => Some(recorded.unwrap_or(b'\t')),
        _ => None,
    }
}
