//! Reports: every command returns one [`Report`], printed as a table for people or as JSON.

use comfy_table::{ContentArrangement, Table, presets};
use serde_json::Value;

/// What a command reports: the same content for people and for programs.
#[derive(Debug, Clone)]
pub struct Report {
    pub json: Value,
    pub text: String,
}

impl Report {
    /// A report from a JSON value and its text rendering.
    pub fn new(json: Value, text: impl Into<String>) -> Self {
        Self {
            json,
            text: text.into(),
        }
    }
}

/// A plain table with a header row.
pub fn table<const N: usize>(
    headers: [&str; N],
    rows: impl IntoIterator<Item = [String; N]>,
) -> String {
    let headers: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    table_of(&headers, &rows)
}

/// A table whose columns are known only at run time (a query's result).
pub fn table_of(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    table.set_header(headers);
    for row in rows {
        table.add_row(row);
    }
    table.to_string()
}

/// Sizes for people: `12.3 MiB`.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Epoch milliseconds as UTC time for people.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(time(1_717_027_201_000), "2024-05-30 00:00:01");
        let text = table(["a", "b"], [["1".to_owned(), "2".to_owned()]]);
        assert!(text.contains('a') && text.contains('2'));
    }
}
