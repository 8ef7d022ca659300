//! Schema inference: a [`Node`] collects, per column path, the set of value kinds seen in the
//! sampled records (and the first example of each kind); [`Node::resolve`] turns the kinds into
//! an Arrow type. Merging two nodes is a union, so inference over objects, partitions and crawls
//! is order-independent, and a field seen in any sampled record is never dropped.
//!
//! Widening: int ⊔ float = double; RFC 3339 ⊔ naive ISO 8601 = timestamp. A column that mixes
//! families (number and string, struct and scalar, timestamp and free text) is typed by the
//! family that dominates it: when at least [`DEFAULT_DOMINANT_SHARE`] (or the crawl's setting) of
//! its observed values are of one family, the column has that family's type and the others are
//! reported as a [`Conflict`] whose values conversion quarantines record by record. Only when no
//! family dominates does the column become a string, written as text. One bad value never
//! changes a column's type; each node counts the values of each kind it saw to decide.

use std::collections::HashMap;

use arrow::datatypes::{DataType, Field, Schema};
use serde_json::Value;

mod resolve;
mod visit;
pub use visit::ObserveSeed;

/// The time zone of zone-aware timestamps: UTC, as an offset.
pub const UTC: &str = "+00:00";

/// Arrow field metadata key telling how a timestamp column is written in the source.
pub const TIMESTAMP_SOURCE: &str = "sluice.timestamp_source";

const MAX_EXAMPLE_CHARS: usize = 80;

/// The share of a column's observed values one type family must have to type the column.
pub const DEFAULT_DOMINANT_SHARE: f64 = 0.99;

/// The kind of one observed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Null,
    Bool,
    Int,
    Float,
    EpochSeconds,
    EpochMillis,
    TimestampTz,
    TimestampNaive,
    String,
    Struct,
    List,
}

impl Kind {
    const ALL: [Kind; 11] = [
        Kind::Null,
        Kind::Bool,
        Kind::Int,
        Kind::Float,
        Kind::EpochSeconds,
        Kind::EpochMillis,
        Kind::TimestampTz,
        Kind::TimestampNaive,
        Kind::String,
        Kind::Struct,
        Kind::List,
    ];

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// Kinds of one family widen into one type; kinds of two families conflict.
    fn family(self) -> u16 {
        let bits = |kinds: &[Kind]| kinds.iter().fold(0, |acc, k| acc | k.bit());
        match self {
            Kind::Null => Kind::Null.bit(),
            Kind::Bool => Kind::Bool.bit(),
            Kind::Int | Kind::Float | Kind::EpochSeconds | Kind::EpochMillis => bits(&[
                Kind::Int,
                Kind::Float,
                Kind::EpochSeconds,
                Kind::EpochMillis,
            ]),
            Kind::TimestampTz | Kind::TimestampNaive => {
                bits(&[Kind::TimestampTz, Kind::TimestampNaive])
            }
            Kind::String => Kind::String.bit(),
            Kind::Struct => Kind::Struct.bit(),
            Kind::List => Kind::List.bit(),
        }
    }

    /// The catalog's name for the kind, as shown in conflicts (epoch integers are timestamps).
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "boolean",
            Kind::Int => "bigint",
            Kind::Float => "double",
            Kind::EpochSeconds | Kind::EpochMillis => "timestamp",
            Kind::TimestampTz | Kind::TimestampNaive => "timestamp",
            Kind::String => "string",
            Kind::Struct => "struct",
            Kind::List => "array",
        }
    }
}

/// A column that mixed kinds which cannot widen into one another.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conflict {
    /// Dotted path of the column (`location.alt`, `tags[]`).
    pub path: String,
    /// The kinds seen, by catalog type name.
    pub types: Vec<String>,
    /// One example value per type name.
    pub examples: Vec<(String, String)>,
    /// Values seen per type name, in the crawl's sample (empty where a side had no counts: a
    /// Parquet footer, a stored schema).
    #[serde(default)]
    pub counts: Vec<(String, u64)>,
    /// The type the column was given.
    #[serde(default)]
    pub resolved: String,
    /// What becomes of the values that are not of `resolved`.
    #[serde(default)]
    pub resolution: Resolution,
}

/// What becomes of a conflict's minority values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// One family dominates: the others are quarantined at conversion, record by record.
    Quarantined,
    /// No family dominates: the column is a string and every value is written as text.
    #[default]
    WrittenAsText,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Quarantined => "quarantined",
            Resolution::WrittenAsText => "written_as_text",
        }
    }
}

/// Inferred shape of one column path (or of a whole record, as a struct).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    kinds: u16,
    /// Values seen of each kind (by `Kind as usize`); zero for a kind set from a stored schema.
    counts: [u64; 11],
    fields: Vec<(String, Node)>,
    field_index: HashMap<String, usize>,
    item: Option<Box<Node>>,
    examples: Vec<(Kind, String)>,
}

impl Node {
    /// An empty record shape.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when nothing was observed.
    pub fn is_empty(&self) -> bool {
        self.kinds == 0
    }

    fn has(&self, kind: Kind) -> bool {
        self.kinds & kind.bit() != 0
    }

    /// Top-level field names, in first-seen order.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(name, _)| name.as_str())
    }

    fn mark(&mut self, kind: Kind, example: impl FnOnce() -> String) {
        self.counts[kind as usize] += 1;
        if !self.has(kind) {
            self.kinds |= kind.bit();
            if !matches!(kind, Kind::Null | Kind::Struct | Kind::List) {
                let mut text = example();
                if text.chars().count() > MAX_EXAMPLE_CHARS {
                    text = text.chars().take(MAX_EXAMPLE_CHARS).collect::<String>() + "…";
                }
                self.examples.push((kind, text));
            }
        }
    }

    fn field_mut(&mut self, name: &str) -> &mut Node {
        // Records have a handful of fields: comparing names beats hashing them.
        let found = if self.fields.len() <= 24 {
            self.fields.iter().position(|(field, _)| field == name)
        } else {
            self.field_index.get(name).copied()
        };
        let index = match found {
            Some(index) => index,
            None => {
                self.fields.push((name.to_owned(), Node::default()));
                self.field_index
                    .insert(name.to_owned(), self.fields.len() - 1);
                self.fields.len() - 1
            }
        };
        &mut self.fields[index].1
    }

    /// Observes one record (or value); `name` is the field name, used to detect epoch times.
    pub fn observe(&mut self, value: &Value, name: &str) {
        match value {
            Value::Null => self.mark(Kind::Null, String::new),
            Value::Bool(b) => self.mark(Kind::Bool, || b.to_string()),
            Value::Number(number) => match number.as_i64() {
                Some(int) => self.observe_int(int, name),
                None => self.mark(Kind::Float, || number.to_string()),
            },
            Value::String(text) => self.observe_str(text),
            Value::Array(items) => {
                self.mark(Kind::List, String::new);
                let item = self.item.get_or_insert_with(Box::default);
                for element in items {
                    item.observe(element, name);
                }
            }
            Value::Object(map) => {
                self.mark(Kind::Struct, String::new);
                for (key, field_value) in map {
                    self.field_mut(key).observe(field_value, key);
                }
            }
        }
    }

    fn observe_int(&mut self, int: i64, name: &str) {
        let kind = epoch_kind(name, int).unwrap_or(Kind::Int);
        self.mark(kind, || int.to_string());
    }

    fn observe_str(&mut self, text: &str) {
        self.mark(string_kind(text), || format!("{text:?}"));
    }

    /// Unions another node into this one.
    pub fn merge(&mut self, other: &Node) {
        for (kind, example) in &other.examples {
            if !self.has(*kind) {
                self.examples.push((*kind, example.clone()));
            }
        }
        self.kinds |= other.kinds;
        for (count, more) in self.counts.iter_mut().zip(other.counts) {
            *count += more;
        }
        for (name, child) in &other.fields {
            self.field_mut(name).merge(child);
        }
        if let Some(other_item) = &other.item {
            self.item.get_or_insert_with(Box::default).merge(other_item);
        }
    }

    /// The node of a column path (`a.b`, `readings[].value`), where it was observed.
    pub fn at(&self, path: &str) -> Option<&Node> {
        let mut node = self;
        for segment in path.split('.') {
            let (name, into_list) = match segment.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (segment, false),
            };
            node = &node.fields.iter().find(|(field, _)| field == name)?.1;
            if into_list {
                node = node.item.as_deref()?;
            }
        }
        Some(node)
    }

    /// Every field name observed, at any depth.
    pub fn collect_names(&self, names: &mut std::collections::HashSet<Vec<u8>>) {
        for (name, child) in &self.fields {
            if !names.contains(name.as_bytes()) {
                names.insert(name.as_bytes().to_vec());
            }
            child.collect_names(names);
        }
        if let Some(item) = &self.item {
            item.collect_names(names);
        }
    }

    /// Values seen per catalog type name (null not counted).
    pub fn type_counts(&self) -> Vec<(String, u64)> {
        let mut counts: Vec<(String, u64)> = Vec::new();
        for kind in Kind::ALL {
            let count = self.counts[kind as usize];
            if kind == Kind::Null || count == 0 {
                continue;
            }
            match counts.iter_mut().find(|(t, _)| t == kind.type_name()) {
                Some((_, n)) => *n += count,
                None => counts.push((kind.type_name().to_owned(), count)),
            }
        }
        counts
    }

    /// The field this node alone resolves to (its conflicts dropped).
    pub fn resolve_field(&self, name: &str, dominant_share: f64) -> Field {
        self.resolve(name, name, dominant_share, &mut Vec::new())
    }

    /// Rebuilds the node that resolves to a stored Arrow field, so that a later crawl merges
    /// new observations into the table's current schema.
    pub fn from_field(field: &Field) -> Node {
        let mut node = Node::default();
        let source = field.metadata().get(TIMESTAMP_SOURCE).map(String::as_str);
        match field.data_type() {
            DataType::Null => node.kinds = Kind::Null.bit(),
            DataType::Boolean => node.kinds = Kind::Bool.bit(),
            dt if dt.is_integer() => node.kinds = Kind::Int.bit(),
            dt if dt.is_floating()
                || matches!(dt, DataType::Decimal128(..) | DataType::Decimal256(..)) =>
            {
                node.kinds = Kind::Float.bit()
            }
            DataType::Timestamp(_, tz) => {
                node.kinds = match source {
                    Some("epoch_seconds") => Kind::EpochSeconds.bit(),
                    Some("epoch_millis") => Kind::EpochMillis.bit(),
                    Some("rfc3339") => Kind::TimestampTz.bit(),
                    Some("iso8601") if tz.is_some() => {
                        Kind::TimestampTz.bit() | Kind::TimestampNaive.bit()
                    }
                    _ if tz.is_some() => Kind::TimestampTz.bit(),
                    _ => Kind::TimestampNaive.bit(),
                }
            }
            DataType::Struct(children) => {
                node.kinds = Kind::Struct.bit();
                for child in children {
                    *node.field_mut(child.name()) = Node::from_field(child);
                }
            }
            DataType::List(item) | DataType::LargeList(item) => {
                node.kinds = Kind::List.bit();
                node.item = Some(Box::new(Node::from_field(item)));
            }
            _ => node.kinds = Kind::String.bit(),
        }
        node
    }

    /// Rebuilds a record node from a stored schema.
    pub fn from_schema(schema: &Schema) -> Node {
        let mut node = Node {
            kinds: Kind::Struct.bit(),
            ..Node::default()
        };
        for field in schema.fields() {
            *node.field_mut(field.name()) = Node::from_field(field);
        }
        node
    }
}

/// Field metadata recording how a timestamp column is written in the source.
pub fn source_metadata(source: &str) -> HashMap<String, String> {
    HashMap::from([(TIMESTAMP_SOURCE.to_owned(), source.to_owned())])
}

/// Integers in a field whose name says it is a time, and whose magnitude fits, are epoch times.
fn epoch_kind(name: &str, value: i64) -> Option<Kind> {
    // Magnitude first: most integers are no epoch time, and the name test is the dearer one.
    let seconds = (1_000_000_000..10_000_000_000).contains(&value);
    let millis = (1_000_000_000_000..10_000_000_000_000).contains(&value);
    if !seconds && !millis {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    let says_millis = ["_ms", "millis", "_msec"]
        .iter()
        .any(|suffix| lower.ends_with(suffix));
    let says_time = says_millis
        || lower == "ts"
        || lower == "time"
        || lower == "epoch"
        || [
            "_ts",
            "_time",
            "timestamp",
            "_epoch",
            "_at",
            "_sec",
            "_seconds",
            "time_s",
        ]
        .iter()
        .any(|suffix| lower.ends_with(suffix));
    if !says_time {
        return None;
    }
    match (seconds, millis) {
        (true, _) if !says_millis => Some(Kind::EpochSeconds),
        (_, true) => Some(Kind::EpochMillis),
        _ => None,
    }
}

/// RFC 3339 (with an offset) or ISO 8601 (naive) timestamps in strings.
fn string_kind(text: &str) -> Kind {
    let bytes = text.as_bytes();
    let looks_like_date = bytes.len() >= 19
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b't' | b' ');
    if !looks_like_date {
        return Kind::String;
    }
    if chrono::DateTime::parse_from_rfc3339(text).is_ok() {
        return Kind::TimestampTz;
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if chrono::NaiveDateTime::parse_from_str(text, format).is_ok() {
            return Kind::TimestampNaive;
        }
    }
    Kind::String
}

#[cfg(test)]
mod tests;
