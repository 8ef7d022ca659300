//! Turning a crawl's grouped reads into the catalog writes of its one commit: a table's merged
//! schema and version, partitions, objects and properties, with the report's counts as it goes.

use std::collections::BTreeMap;

use arrow::datatypes::{DataType, Field};

use super::Read;
use super::group::Group;
use super::infer::{Node, Resolution};
use super::layout::KeyLayout;
use super::plan::ListedObject;
use super::report::{CrawlReport, PendingChange, Split, TableChange, TableConflict};
use super::sample::{ObjectAnalysis, ObjectFailure};
use super::sniff::Format;
use crate::catalog::evolve::{PendingType, evolve, leaf_fields, same_type};
use crate::catalog::schema::{diff, encode_schema, type_name};
use crate::catalog::type_changes::TypeChangeWrite;
use crate::catalog::{
    ObjectStatus, ObjectWrite, PartitionWrite, SchemaPolicy, TableInfo, TableKind, TableWrite,
};

/// The write for one group of objects (`indices` into `reads`), against the table it extends
/// if any; `default_policy` applies to a new table.
pub(super) fn table_write(
    group: &Group,
    current: Option<&TableInfo>,
    reads: &[Read],
    layouts: &[KeyLayout],
    indices: &[usize],
    options: &super::CrawlOptions,
    report: &mut CrawlReport,
) -> TableWrite {
    let analyses: Vec<&ObjectAnalysis> = indices
        .iter()
        .map(|&i| reads[i].outcome.as_ref().expect("successes only"))
        .collect();

    // What this crawl saw, typed by the families that dominate each column; the table's
    // stored schema is then evolved by its policy, never merged with the observations.
    let mut observed = Node::default();
    for analysis in &analyses {
        observed.merge(&analysis.schema);
    }
    let share = options.dominant_share;
    let (observed_schema, mut conflicts) = observed.resolve_schema_with(share);
    let policy = current.map_or(options.schema_policy, |t| t.schema_policy);
    let (new_version, logged_change, pending) = match current {
        None => (
            Some((
                observed_schema.clone(),
                diff(&arrow::datatypes::Schema::empty(), &observed_schema),
            )),
            None,
            Vec::new(),
        ),
        Some(table) => {
            let evolution = evolve(&table.schema, &observed_schema, policy);
            let applied = diff(&table.schema, &evolution.schema);
            let logged = match policy {
                SchemaPolicy::Log => {
                    let seen = evolve(&table.schema, &observed_schema, SchemaPolicy::Update);
                    Some(diff(&table.schema, &seen.schema)).filter(|d| !d.is_empty())
                }
                _ => None,
            };
            // A conflict names the type the column has in the table, which may not be the one
            // this crawl's values would have given it.
            let leaves = leaf_fields(evolution.schema.fields());
            for conflict in &mut conflicts {
                if let Some(field) = leaves.get(&conflict.path) {
                    conflict.resolved = type_name(field.data_type());
                    conflict.resolution = if field.data_type() == &DataType::Utf8 {
                        Resolution::WrittenAsText
                    } else {
                        Resolution::Quarantined
                    };
                }
            }
            let pending = evolution
                .pending
                .into_iter()
                .map(|change| evidence(change, &observed, &analyses, indices, reads, share))
                .collect();
            (
                (!applied.is_empty()).then_some((evolution.schema, applied)),
                logged,
                pending,
            )
        }
    };
    report
        .pending_changes
        .extend(pending.iter().map(|write: &TypeChangeWrite| PendingChange {
            table: group.name.clone(),
            column: write.change.column.clone(),
            from: type_name(write.change.from.data_type()),
            to: type_name(write.change.to.data_type()),
            counts: write.counts.clone(),
            objects: write.objects.iter().take(10).cloned().collect(),
            objects_total: write.objects.len(),
        }));
    match &current {
        None => report.tables_created.push(group.name.clone()),
        Some(_) => report.tables_updated.push(group.name.clone()),
    }
    if let Some((_, change)) = &new_version {
        let version = current.map_or(1, |t| t.current_version + 1);
        report.schema_versions.push(TableChange {
            table: group.name.clone(),
            version: Some(version),
            diff: change.clone(),
        });
    }
    if let Some(change) = &logged_change {
        report.logged_changes.push(TableChange {
            table: group.name.clone(),
            version: None,
            diff: change.clone(),
        });
    }
    if let Some(reason) = &group.split_reason {
        report.splits.push(Split {
            table: group.name.clone(),
            location: group.location.clone(),
            reason: reason.clone(),
        });
    }
    report
        .conflicts
        .extend(conflicts.iter().map(|c| TableConflict {
            table: group.name.clone(),
            conflict: c.clone(),
        }));

    let mut partitions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut objects = Vec::new();
    for &i in indices {
        let read = &reads[i];
        let analysis = read.outcome.as_ref().expect("successes only");
        let layout = &layouts[i];
        partitions
            .entry(layout.partition_location.clone())
            .or_insert_with(|| layout.partition.iter().map(|(_, v)| v.clone()).collect());
        report.records += analysis.records;
        report.malformed_in_sample += analysis.malformed_records;
        objects.push(object_write(
            &read.object,
            Ok(analysis),
            Some(layout.partition_location.clone()),
        ));
    }
    report.partitions += partitions.len();
    report.objects_crawled += objects.len();
    let partition_keys = partition_key_fields(current, layouts, indices, &group.partition_keys);
    TableWrite {
        existing_id: group.existing,
        name: group.name.clone(),
        location: group.location.clone(),
        kind: if group.envelopes {
            TableKind::FirehoseErrors
        } else {
            TableKind::Data
        },
        format: most_common(analyses.iter().map(|a| a.format.as_str())),
        compression: most_common(analyses.iter().map(|a| a.compression.as_str())),
        policy,
        partition_keys,
        new_version,
        logged_change,
        conflicts,
        pending,
        properties: properties(current.map(|t| &t.properties), &analyses),
        partitions: partitions
            .into_iter()
            .map(|(location, values)| PartitionWrite { location, values })
            .collect(),
        objects,
    }
}

pub(super) fn object_write(
    object: &ListedObject,
    outcome: std::result::Result<&ObjectAnalysis, &ObjectFailure>,
    partition_location: Option<String>,
) -> ObjectWrite {
    let base = ObjectWrite {
        key: object.key.clone(),
        etag: object.etag.clone(),
        size: object.size as i64,
        last_modified: object.last_modified_ms,
        status: ObjectStatus::Crawled,
        format: None,
        compression: None,
        partition_location,
        records: 0,
        records_exact: false,
        sampled_records: 0,
        malformed_records: 0,
        failure_reason: None,
        error_codes: None,
    };
    match outcome {
        Ok(analysis) => ObjectWrite {
            format: Some(analysis.format.as_str().to_owned()),
            compression: Some(analysis.compression.as_str().to_owned()),
            records: analysis.records as i64,
            records_exact: analysis.records_exact,
            sampled_records: analysis.sampled_records as i64,
            malformed_records: analysis.malformed_records as i64,
            error_codes: (!analysis.error_codes.is_empty())
                .then(|| serde_json::to_string(&analysis.error_codes).expect("serializes")),
            ..base
        },
        Err(failure) => ObjectWrite {
            status: ObjectStatus::Failed,
            failure_reason: Some(failure.to_string()),
            ..base
        },
    }
}

/// A pending change with its evidence: the values this crawl saw per type, and the objects in
/// which the new type dominates the column.
fn evidence(
    change: PendingType,
    observed: &Node,
    analyses: &[&ObjectAnalysis],
    indices: &[usize],
    reads: &[Read],
    share: f64,
) -> TypeChangeWrite {
    let counts = observed
        .at(&change.column)
        .map(Node::type_counts)
        .unwrap_or_default();
    let objects = analyses
        .iter()
        .zip(indices)
        .filter(|(analysis, _)| {
            analysis.schema.at(&change.column).is_some_and(|node| {
                let field = node.resolve_field(change.to.name(), share);
                same_type(&field, &change.to)
            })
        })
        .map(|(_, &i)| reads[i].object.key.clone())
        .collect();
    TypeChangeWrite {
        change,
        counts,
        objects,
    }
}

fn most_common<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for value in values {
        *counts.entry(value).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(v, _)| v.to_owned())
        .unwrap_or_default()
}

/// Partition columns are typed by their values: integers when every value is one (Firehose's
/// year/month/day/hour as `int`), strings otherwise; a column once typed string stays string.
fn partition_key_fields(
    current: Option<&TableInfo>,
    layouts: &[KeyLayout],
    indices: &[usize],
    keys: &[String],
) -> Vec<Field> {
    keys.iter()
        .enumerate()
        .map(|(position, name)| {
            let was_string = current
                .and_then(|t| t.partition_keys.iter().find(|f| f.name() == name))
                .is_some_and(|f| f.data_type() == &DataType::Utf8);
            let all_ints = indices
                .iter()
                .filter_map(|&i| layouts[i].partition.get(position))
                .all(|(_, value)| {
                    !value.is_empty()
                        && value.bytes().all(|b| b.is_ascii_digit())
                        && value.len() <= 9
                });
            let data_type = if was_string || !all_ints {
                DataType::Utf8
            } else {
                DataType::Int32
            };
            Field::new(name, data_type, false)
        })
        .collect()
}

/// Table properties: the CSV dialect, and for Firehose error envelopes the error codes seen
/// (accumulated over crawls) and the schema of the decoded `rawData`.
fn properties(
    current: Option<&serde_json::Value>,
    analyses: &[&ObjectAnalysis],
) -> serde_json::Value {
    let mut properties = current.cloned().unwrap_or_else(|| serde_json::json!({}));
    if let Some(Format::Csv { delimiter, header }) = analyses.first().map(|a| a.format) {
        properties["delimiter"] = serde_json::Value::String((delimiter as char).to_string());
        properties["header"] = serde_json::Value::Bool(header);
    }
    let envelopes: Vec<&&ObjectAnalysis> = analyses
        .iter()
        .filter(|a| a.format == Format::FirehoseErrors)
        .collect();
    if !envelopes.is_empty() {
        let mut codes: BTreeMap<String, u64> = properties
            .get("error_codes")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let mut raw = Node::new();
        for analysis in &envelopes {
            for (code, count) in &analysis.error_codes {
                *codes.entry(code.clone()).or_default() += count;
            }
            if let Some(schema) = &analysis.raw_data_schema {
                raw.merge(schema);
            }
        }
        properties["error_codes"] = serde_json::to_value(codes).expect("serializes");
        let (raw_schema, _) = raw.resolve_schema();
        properties["raw_data_schema"] =
            serde_json::from_str(&encode_schema(&raw_schema)).expect("schema json");
    }
    properties
}
