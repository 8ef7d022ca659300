//! Table grouping, as Glue's CombineCompatibleSchemas: objects under one table root whose
//! formats match, whose partition keys match and whose columns mostly overlap make one table;
//! others become separate tables, each with the reason it was split off.

use std::collections::{BTreeMap, BTreeSet};

use super::infer::Node;
use super::layout::KeyLayout;
use super::sniff::Format;

/// Table grouping settings.
#[derive(Debug, Clone)]
pub struct GroupingOptions {
    /// Shared top-level columns over the smaller column set for two schemas to be compatible.
    pub min_column_overlap: f64,
}

impl Default for GroupingOptions {
    fn default() -> Self {
        Self {
            min_column_overlap: 0.7,
        }
    }
}

/// What grouping needs of one analysed object.
#[derive(Debug, Clone)]
pub struct Member<'a> {
    pub layout: &'a KeyLayout,
    pub format: Format,
    pub schema: &'a Node,
}

/// What grouping needs of an existing table.
#[derive(Debug, Clone)]
pub struct ExistingTable {
    pub id: i64,
    pub name: String,
    pub location: String,
    pub envelopes: bool,
    pub format_family: String,
    pub partition_keys: Vec<String>,
    pub columns: BTreeSet<String>,
}

/// One group of objects: an existing table to update or a new table to create.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub existing: Option<i64>,
    pub name: String,
    pub location: String,
    pub envelopes: bool,
    pub format_family: String,
    pub partition_keys: Vec<String>,
    /// Indices into the members slice.
    pub members: Vec<usize>,
    /// Why this group is not part of the first table at its location.
    pub split_reason: Option<String>,
    columns: BTreeSet<String>,
}

fn incompatibility(
    group: &Group,
    format_family: &str,
    keys: &[String],
    columns: &BTreeSet<String>,
    options: &GroupingOptions,
) -> Option<String> {
    if group.format_family != format_family {
        return Some(format!(
            "format {format_family} differs from table {}'s {}",
            group.name, group.format_family
        ));
    }
    if group.partition_keys != keys {
        return Some(format!(
            "partition keys [{}] differ from table {}'s [{}]",
            keys.join(", "),
            group.name,
            group.partition_keys.join(", ")
        ));
    }
    let smaller = columns.len().min(group.columns.len());
    if smaller == 0 {
        return None;
    }
    let shared = columns.intersection(&group.columns).count();
    let overlap = shared as f64 / smaller as f64;
    (overlap < options.min_column_overlap).then(|| {
        format!(
            "{shared} of {smaller} columns in common with table {} (overlap {overlap:.2} < {:.2})",
            group.name, options.min_column_overlap
        )
    })
}

/// Groups analysed objects into tables. `base_name` names a table from its location.
pub fn group(
    members: &[Member<'_>],
    existing: &[ExistingTable],
    options: &GroupingOptions,
    base_name: impl Fn(&str, bool) -> String,
) -> Vec<Group> {
    let mut taken: BTreeSet<String> = existing.iter().map(|t| t.name.clone()).collect();
    let mut by_root: BTreeMap<(String, bool), Vec<Group>> = BTreeMap::new();
    for table in existing {
        by_root
            .entry((table.location.clone(), table.envelopes))
            .or_default()
            .push(Group {
                existing: Some(table.id),
                name: table.name.clone(),
                location: table.location.clone(),
                envelopes: table.envelopes,
                format_family: table.format_family.clone(),
                partition_keys: table.partition_keys.clone(),
                members: Vec::new(),
                split_reason: None,
                columns: table.columns.clone(),
            });
    }
    for (index, member) in members.iter().enumerate() {
        let envelopes = member.format == Format::FirehoseErrors;
        let root = (member.layout.table_root.clone(), envelopes);
        let keys = member.layout.partition_keys();
        let columns: BTreeSet<String> = member.schema.field_names().map(str::to_owned).collect();
        let family = member.format.family();
        let groups = by_root.entry(root).or_default();
        let mut first_reason = None;
        let mut joined = false;
        for group in groups.iter_mut() {
            match incompatibility(group, family, &keys, &columns, options) {
                None => {
                    group.members.push(index);
                    group.columns.extend(columns.iter().cloned());
                    joined = true;
                    break;
                }
                Some(reason) => {
                    first_reason.get_or_insert(reason);
                }
            }
        }
        if joined {
            continue;
        }
        let base = base_name(&member.layout.table_root, envelopes);
        let mut name = base.clone();
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        taken.insert(name.clone());
        groups.push(Group {
            existing: None,
            name,
            location: member.layout.table_root.clone(),
            envelopes,
            format_family: family.to_owned(),
            partition_keys: keys,
            members: vec![index],
            split_reason: first_reason,
            columns,
        });
    }
    by_root
        .into_values()
        .flatten()
        .filter(|g| !g.members.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::layout::layout;
    use super::*;
    use serde_json::json;

    fn node(value: serde_json::Value) -> Node {
        let mut node = Node::new();
        node.observe(&value, "");
        node
    }

    #[test]
    fn compatible_objects_share_a_table_and_others_split_with_a_reason() {
        let layouts = [
            layout("t/2024/05/30/01/a.gz"),
            layout("t/2024/05/30/02/b.gz"),
            layout("t/2024/05/30/03/c.gz"),
            layout("t/2024/05/30/04/d.csv"),
        ];
        let schemas = [
            node(json!({"a": 1, "b": 2, "c": 3})),
            node(json!({"a": 1, "b": 2, "c": 3, "d": 4})),
            node(json!({"x": 1, "y": 2, "z": 3})),
            node(json!({"a": 1, "b": 2, "c": 3})),
        ];
        let formats = [
            Format::Ndjson,
            Format::ConcatenatedJson,
            Format::Ndjson,
            Format::Csv {
                delimiter: b',',
                header: true,
            },
        ];
        let members: Vec<Member<'_>> = (0..4)
            .map(|i| Member {
                layout: &layouts[i],
                format: formats[i],
                schema: &schemas[i],
            })
            .collect();
        let groups = group(&members, &[], &GroupingOptions::default(), |root, _| {
            root.replace('/', "_")
        });
        let summary: Vec<_> = groups
            .iter()
            .map(|g| (g.name.as_str(), g.members.clone()))
            .collect();
        assert_eq!(
            summary,
            [("t", vec![0, 1]), ("t_2", vec![2]), ("t_3", vec![3])]
        );
        assert_eq!(
            groups[1].split_reason.as_deref(),
            Some("0 of 3 columns in common with table t (overlap 0.00 < 0.70)")
        );
        assert_eq!(
            groups[2].split_reason.as_deref(),
            Some("format csv differs from table t's json")
        );
    }

    #[test]
    fn new_objects_join_the_existing_table_at_their_location() {
        let layouts = [layout("t/2024/05/31/00/e.gz")];
        let schemas = [node(json!({"a": 1, "b": 2, "new": 3}))];
        let members = [Member {
            layout: &layouts[0],
            format: Format::Ndjson,
            schema: &schemas[0],
        }];
        let existing = ExistingTable {
            id: 7,
            name: "telemetry".into(),
            location: "t".into(),
            envelopes: false,
            format_family: "json".into(),
            partition_keys: ["year", "month", "day", "hour"].map(String::from).to_vec(),
            columns: ["a", "b"].map(String::from).into(),
        };
        let groups = group(
            &members,
            &[existing],
            &GroupingOptions::default(),
            |_, _| unreachable!(),
        );
        assert_eq!(groups.len(), 1);
        assert_eq!(
            (groups[0].existing, groups[0].members.clone()),
            (Some(7), vec![0])
        );
    }
}
