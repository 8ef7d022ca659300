//! Resolution: a column's observed kinds and their counts become its Arrow type, by the
//! family that dominates its values, with the conflicts found on the way.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};

use super::{Conflict, DEFAULT_DOMINANT_SHARE, Kind, Node, Resolution, UTC, source_metadata};

impl Node {
    /// Resolves a record node into an Arrow schema and the conflicts found on the way, with the
    /// default dominant share.
    pub fn resolve_schema(&self) -> (Schema, Vec<Conflict>) {
        self.resolve_schema_with(DEFAULT_DOMINANT_SHARE)
    }

    /// Resolves a record node into an Arrow schema: a column mixing families takes the type of
    /// the family with at least `dominant_share` of its values.
    pub fn resolve_schema_with(&self, dominant_share: f64) -> (Schema, Vec<Conflict>) {
        let mut conflicts = Vec::new();
        let fields: Vec<Field> = self
            .fields
            .iter()
            .map(|(name, child)| child.resolve(name, name, dominant_share, &mut conflicts))
            .collect();
        (Schema::new(fields), conflicts)
    }

    fn count_of(&self, kinds: u16) -> u64 {
        Kind::ALL
            .iter()
            .filter(|k| kinds & k.bit() != 0)
            .map(|k| self.counts[*k as usize])
            .sum()
    }

    /// True when every kind seen was counted (none came from a stored schema or a footer).
    fn counted(&self, kinds: u16) -> bool {
        Kind::ALL
            .iter()
            .all(|k| kinds & k.bit() == 0 || self.counts[*k as usize] > 0)
    }

    pub(super) fn resolve(
        &self,
        name: &str,
        path: &str,
        share: f64,
        conflicts: &mut Vec<Conflict>,
    ) -> Field {
        let non_null = self.kinds & !Kind::Null.bit();
        if non_null == 0 {
            return Field::new(name, DataType::Null, true);
        }
        let families: Vec<u16> = {
            let mut families: Vec<u16> = Kind::ALL
                .iter()
                .filter(|k| non_null & k.bit() != 0)
                .map(|k| k.family())
                .collect();
            families.dedup();
            families
        };
        let total = self.count_of(non_null);
        let counted = self.counted(non_null);
        let dominant = |kinds: u16| counted && self.count_of(kinds) as f64 >= share * total as f64;
        let family_kinds = match families.as_slice() {
            [family] => *family & non_null,
            _ => match families.iter().find(|&&f| dominant(f & non_null)) {
                Some(family) => family & non_null,
                None => {
                    let field = Field::new(name, DataType::Utf8, true);
                    conflicts.push(self.conflict(path, &field, Resolution::WrittenAsText));
                    return field;
                }
            },
        };
        // Within numbers, epoch times stay times when they dominate: one small integer in a
        // `ts` column is a bad value, not a reason to make the column a number.
        let epochs = family_kinds & (Kind::EpochSeconds.bit() | Kind::EpochMillis.bit());
        let kinds = match epochs {
            e if e != family_kinds && e.count_ones() == 1 && dominant(e) => e,
            _ => family_kinds,
        };
        let field = self.resolve_kinds(kinds, name, path, share, conflicts);
        if kinds != non_null {
            conflicts.push(self.conflict(path, &field, Resolution::Quarantined));
        }
        field
    }

    /// The type of a column whose values are `kinds`, all of one family.
    fn resolve_kinds(
        &self,
        kinds: u16,
        name: &str,
        path: &str,
        share: f64,
        conflicts: &mut Vec<Conflict>,
    ) -> Field {
        let field = |data_type| Field::new(name, data_type, true);
        let only = |allowed: &[Kind]| kinds & !allowed.iter().fold(0, |acc, k| acc | k.bit()) == 0;
        let timestamp = |tz: bool, source: &str| {
            // An offset, not the zone name "UTC": the same instant, readable without a zone database.
            let tz: Option<Arc<str>> = tz.then(|| UTC.into());
            field(DataType::Timestamp(TimeUnit::Microsecond, tz))
                .with_metadata(source_metadata(source))
        };
        if only(&[Kind::Bool]) {
            return field(DataType::Boolean);
        }
        if kinds == Kind::EpochSeconds.bit() {
            return timestamp(true, "epoch_seconds");
        }
        if kinds == Kind::EpochMillis.bit() {
            return timestamp(true, "epoch_millis");
        }
        if only(&[Kind::Int, Kind::EpochSeconds, Kind::EpochMillis]) {
            return field(DataType::Int64);
        }
        if only(&[
            Kind::Int,
            Kind::Float,
            Kind::EpochSeconds,
            Kind::EpochMillis,
        ]) {
            return field(DataType::Float64);
        }
        if kinds == Kind::TimestampTz.bit() {
            return timestamp(true, "rfc3339");
        }
        if kinds == Kind::TimestampNaive.bit() {
            return timestamp(false, "iso8601");
        }
        if only(&[Kind::TimestampTz, Kind::TimestampNaive]) {
            return timestamp(true, "iso8601");
        }
        if only(&[Kind::Struct]) {
            let children: Fields = self
                .fields
                .iter()
                .map(|(child_name, child)| {
                    child.resolve(
                        child_name,
                        &format!("{path}.{child_name}"),
                        share,
                        conflicts,
                    )
                })
                .collect();
            return field(DataType::Struct(children));
        }
        if only(&[Kind::List]) {
            let item = match &self.item {
                Some(item) => item.resolve("item", &format!("{path}[]"), share, conflicts),
                None => Field::new("item", DataType::Null, true),
            };
            return field(DataType::List(Arc::new(item)));
        }
        field(DataType::Utf8)
    }

    fn conflict(&self, path: &str, resolved: &Field, resolution: Resolution) -> Conflict {
        let mut types: Vec<String> = Vec::new();
        let mut counts: Vec<(String, u64)> = Vec::new();
        for kind in Kind::ALL {
            if kind != Kind::Null && self.has(kind) {
                let name = kind.type_name();
                if !types.iter().any(|t| t == name) {
                    types.push(name.to_owned());
                }
                let count = self.counts[kind as usize];
                match counts.iter_mut().find(|(t, _)| t == name) {
                    Some((_, n)) => *n += count,
                    None => counts.push((name.to_owned(), count)),
                }
            }
        }
        if !self.counted(self.kinds & !Kind::Null.bit()) {
            counts.clear();
        }
        let mut examples: Vec<(String, String)> = Vec::new();
        for (kind, example) in &self.examples {
            if *kind != Kind::Null && !examples.iter().any(|(t, _)| t == kind.type_name()) {
                examples.push((kind.type_name().to_owned(), example.clone()));
            }
        }
        examples.sort();
        Conflict {
            path: path.to_owned(),
            types,
            examples,
            counts,
            resolved: crate::catalog::schema::type_name(resolved.data_type()),
            resolution,
        }
    }
}
