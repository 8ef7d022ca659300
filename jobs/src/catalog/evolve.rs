//! How a crawl's observations change a table's stored schema: a pure plan ([`evolve`]), decided
//! before anything is written.
//!
//! Under the default policy ([`SchemaPolicy::AddColumns`], Glue's "add new columns only") a
//! crawl adds the columns it finds and widens a column only where every old value stays what it
//! was (null to any type, a narrower integer to `bigint`, an integer to `double`). Any other type
//! change (`double` to `string` because some device sent text) is *pending*: recorded with its
//! evidence and applied only when a person accepts it ([`Catalog::accept_type_change`]). Under
//! `update` the observed type (the dominant family's, see `crawler::infer`) is applied; under
//! `log` nothing is applied.
//!
//! [`Catalog::accept_type_change`]: super::Catalog::accept_type_change

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema};

use super::model::SchemaPolicy;
use crate::crawler::infer::TIMESTAMP_SOURCE;

/// A type change a policy does not apply on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingType {
    /// Dotted path of the column (`location.alt`, `readings[].value`).
    pub column: String,
    pub from: Field,
    pub to: Field,
}

/// The plan for one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Evolution {
    /// The table's schema after the crawl (the stored one when nothing applies).
    pub schema: Schema,
    /// Type changes waiting for a person.
    pub pending: Vec<PendingType>,
}

/// `base` with the fields of `extra` it lacks appended, recursively into structs; fields of `base`
/// keep their types.
pub fn merge_add_only(base: &Fields, extra: &Fields) -> Fields {
    let mut fields: Vec<Field> = base.iter().map(|f| f.as_ref().clone()).collect();
    for new in extra {
        match fields.iter_mut().find(|f| f.name() == new.name()) {
            None => fields.push(new.as_ref().clone()),
            Some(existing) => {
                if let (DataType::Struct(old), DataType::Struct(more)) =
                    (existing.data_type(), new.data_type())
                {
                    let merged = merge_add_only(old, more);
                    *existing = existing.clone().with_data_type(DataType::Struct(merged));
                }
            }
        }
    }
    fields.into()
}

/// Plans how `observed` (what this crawl saw, typed by dominance) changes `stored`.
pub fn evolve(stored: &Schema, observed: &Schema, policy: SchemaPolicy) -> Evolution {
    let mut schema = match policy {
        SchemaPolicy::Log => stored.clone(),
        SchemaPolicy::AddColumns | SchemaPolicy::Update => {
            Schema::new(merge_add_only(stored.fields(), observed.fields()))
        }
    };
    let before = leaf_fields(stored.fields());
    let mut pending = Vec::new();
    for (path, to) in leaf_fields(observed.fields()) {
        let Some(from) = before.get(&path) else {
            continue;
        };
        if same_type(from, &to) {
            continue;
        }
        let applies = match policy {
            SchemaPolicy::Log => false,
            SchemaPolicy::Update => true,
            SchemaPolicy::AddColumns => keeps_every_value(from.data_type(), to.data_type()),
        };
        match applies.then(|| replace_leaf(schema.fields(), &path, &to)) {
            Some(Some(fields)) => schema = Schema::new(fields),
            _ => pending.push(PendingType {
                column: path,
                from: from.as_ref().clone(),
                to: to.as_ref().clone(),
            }),
        }
    }
    Evolution { schema, pending }
}

/// Two fields hold values of one type: the same Arrow type, and for timestamps the same source
/// (an epoch integer column is not an RFC 3339 text column).
pub fn same_type(a: &Field, b: &Field) -> bool {
    a.data_type() == b.data_type()
        && a.metadata().get(TIMESTAMP_SOURCE) == b.metadata().get(TIMESTAMP_SOURCE)
}

/// A change every value already written survives unchanged.
fn keeps_every_value(from: &DataType, to: &DataType) -> bool {
    match (from, to) {
        (DataType::Null, _) => true,
        (f, DataType::Int64) if f.is_integer() => true,
        (f, DataType::Float64) if f.is_integer() || f.is_floating() => true,
        (DataType::List(a), DataType::List(b)) => {
            keeps_every_value(a.data_type(), b.data_type()) && same_source(a, b)
        }
        _ => false,
    }
}

fn same_source(a: &Field, b: &Field) -> bool {
    a.metadata().get(TIMESTAMP_SOURCE) == b.metadata().get(TIMESTAMP_SOURCE)
}

/// Every leaf field (not a struct, not a list of structs) by dotted path, lists of structs as
/// `name[]`; the same paths as [`super::schema::diff`].
pub fn leaf_fields(fields: &Fields) -> BTreeMap<String, FieldRef> {
    fn walk(prefix: &str, fields: &Fields, out: &mut BTreeMap<String, FieldRef>) {
        for field in fields {
            let path = if prefix.is_empty() {
                field.name().clone()
            } else {
                format!("{prefix}.{}", field.name())
            };
            leaf(&path, field, out);
        }
    }
    fn leaf(path: &str, field: &FieldRef, out: &mut BTreeMap<String, FieldRef>) {
        match field.data_type() {
            DataType::Struct(children) => walk(path, children, out),
            DataType::List(item) | DataType::LargeList(item)
                if matches!(item.data_type(), DataType::Struct(_) | DataType::List(_)) =>
            {
                leaf(&format!("{path}[]"), item, out)
            }
            _ => {
                out.insert(path.to_owned(), field.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", fields, &mut out);
    out
}

/// `fields` with the leaf at `path` replaced by `to` (renamed to the leaf's name); `None` when
/// the path names no leaf.
pub fn replace_leaf(fields: &Fields, path: &str, to: &Field) -> Option<Fields> {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let (name, into_list) = match head.strip_suffix("[]") {
        Some(name) => (name, true),
        None => (head, false),
    };
    let index = fields.iter().position(|f| f.name() == name)?;
    let field = &fields[index];
    let replaced: Field = match (into_list, rest) {
        (false, None) => to.clone().with_name(name),
        (false, Some(rest)) => match field.data_type() {
            DataType::Struct(children) => field
                .as_ref()
                .clone()
                .with_data_type(DataType::Struct(replace_leaf(children, rest, to)?)),
            _ => return None,
        },
        (true, rest) => {
            let DataType::List(item) = field.data_type() else {
                return None;
            };
            let item = match (rest, item.data_type()) {
                (None, _) => to.clone().with_name(item.name()),
                (Some(rest), DataType::Struct(children)) => item
                    .as_ref()
                    .clone()
                    .with_data_type(DataType::Struct(replace_leaf(children, rest, to)?)),
                _ => return None,
            };
            field
                .as_ref()
                .clone()
                .with_data_type(DataType::List(Arc::new(item)))
        }
    };
    let mut out: Vec<FieldRef> = fields.iter().cloned().collect();
    out[index] = Arc::new(replaced);
    Some(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crawler::infer::source_metadata;
    use arrow::datatypes::TimeUnit;

    fn f(name: &str, data_type: DataType) -> Field {
        Field::new(name, data_type, true)
    }

    fn stored() -> Schema {
        Schema::new(vec![
            f("device_id", DataType::Utf8),
            f("pm25", DataType::Float64),
            f("n", DataType::Int64),
            f("z", DataType::Null),
            f(
                "loc",
                DataType::Struct(vec![f("alt", DataType::Int64)].into()),
            ),
        ])
    }

    fn observed() -> Schema {
        Schema::new(vec![
            f("pm25", DataType::Utf8),
            f("n", DataType::Float64),
            f("z", DataType::Boolean),
            f(
                "loc",
                DataType::Struct(
                    vec![f("alt", DataType::Utf8), f("lat", DataType::Float64)].into(),
                ),
            ),
            f("co2", DataType::Float64),
        ])
    }

    #[test]
    fn add_columns_adds_and_widens_but_holds_other_type_changes() {
        let plan = evolve(&stored(), &observed(), SchemaPolicy::AddColumns);
        let leaves: Vec<(String, DataType)> = leaf_fields(plan.schema.fields())
            .into_iter()
            .map(|(p, f)| (p, f.data_type().clone()))
            .collect();
        assert_eq!(
            leaves,
            [
                ("co2".to_owned(), DataType::Float64),
                ("device_id".into(), DataType::Utf8),
                ("loc.alt".into(), DataType::Int64),
                ("loc.lat".into(), DataType::Float64),
                ("n".into(), DataType::Float64),
                ("pm25".into(), DataType::Float64),
                ("z".into(), DataType::Boolean),
            ]
        );
        let pending: Vec<(&str, &DataType)> = plan
            .pending
            .iter()
            .map(|p| (p.column.as_str(), p.to.data_type()))
            .collect();
        assert_eq!(
            pending,
            [("loc.alt", &DataType::Utf8), ("pm25", &DataType::Utf8)]
        );
    }

    #[test]
    fn update_applies_every_change_and_log_none() {
        let plan = evolve(&stored(), &observed(), SchemaPolicy::Update);
        assert!(plan.pending.is_empty());
        let leaves = leaf_fields(plan.schema.fields());
        assert_eq!(leaves["pm25"].data_type(), &DataType::Utf8);
        assert_eq!(leaves["loc.alt"].data_type(), &DataType::Utf8);

        let plan = evolve(&stored(), &observed(), SchemaPolicy::Log);
        assert_eq!(plan.schema, stored());
        assert_eq!(plan.pending.len(), 4, "{:?}", plan.pending);
    }

    #[test]
    fn an_epoch_column_is_not_a_text_timestamp_column() {
        let ts = |source: &str| {
            f(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            )
            .with_metadata(source_metadata(source))
        };
        let plan = evolve(
            &Schema::new(vec![ts("rfc3339")]),
            &Schema::new(vec![ts("epoch_seconds")]),
            SchemaPolicy::AddColumns,
        );
        assert_eq!(plan.pending.len(), 1);
        assert_eq!(plan.schema, Schema::new(vec![ts("rfc3339")]));
    }

    #[test]
    fn leaves_inside_lists_of_structs_are_replaced() {
        let item = f(
            "item",
            DataType::Struct(vec![f("v", DataType::Int64)].into()),
        );
        let fields: Fields = vec![f("r", DataType::List(Arc::new(item)))].into();
        let replaced = replace_leaf(&fields, "r[].v", &f("v", DataType::Utf8)).unwrap();
        assert_eq!(leaf_fields(&replaced)["r[].v"].data_type(), &DataType::Utf8);
        assert!(replace_leaf(&fields, "r[].missing", &f("x", DataType::Utf8)).is_none());
    }
}
