//! What reprocessing a range of event dates must rebuild. A curated file mixes rows of many
//! source objects, and a source object (late records) feeds partitions of several days, so a
//! range cannot be rebuilt file by file: the scope is the range's files closed under lineage
//! (every source that fed one of them, every file such a source fed, and so on). Rebuilding that
//! closure from its sources, in one commit, writes each of their records exactly once.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::Serialize;

/// One lineage row: a published curated file, its partition's values, one source that fed it.
#[derive(Debug, Clone)]
pub struct Lineage {
    pub file_id: i64,
    pub partition_location: String,
    pub partition_values: Vec<String>,
    pub source_key: String,
}

/// What a range reprocess replaces.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReprocessScope {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// The files replaced (ids in the manifest).
    pub files: Vec<i64>,
    /// The source objects converted again.
    pub sources: Vec<String>,
    /// Every partition that gets new files, the range's and those lineage pulls in.
    pub partitions: Vec<String>,
}

/// The scope of `options`' range reprocess (None: not one), on the curated table's lineage.
pub(super) async fn resolve(
    catalog: &crate::catalog::Catalog,
    curated: Option<&crate::catalog::TableInfo>,
    options: &super::ConvertOptions,
) -> crate::Result<Option<ReprocessScope>> {
    let invalid = |reason: String| crate::Error::InvalidArgument {
        field: "range",
        reason,
    };
    match options.mode {
        super::ConvertMode::ReprocessRange { from, to } if from > to => {
            Err(invalid(format!("{from} is after {to}")))
        }
        super::ConvertMode::ReprocessRange { from, to } => {
            let lineage = match curated {
                Some(curated) => catalog.curated_lineage(curated.id).await?,
                None => Vec::new(),
            };
            Ok(Some(scope(&lineage, from, to)))
        }
        _ => Ok(None),
    }
}

/// The event date of a partition (`year`, `month`, `day` first).
fn partition_date(values: &[String]) -> Option<NaiveDate> {
    let number = |i: usize| values.get(i).and_then(|v| v.parse::<u32>().ok());
    NaiveDate::from_ymd_opt(number(0)? as i32, number(1)?, number(2)?)
}

/// The lineage closure of the files whose partitions fall in `from..=to`.
pub fn scope(lineage: &[Lineage], from: NaiveDate, to: NaiveDate) -> ReprocessScope {
    let mut sources_of: BTreeMap<i64, BTreeSet<&str>> = BTreeMap::new();
    let mut files_of: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    let mut partition_of: BTreeMap<i64, &str> = BTreeMap::new();
    let mut pending: Vec<i64> = Vec::new();
    for row in lineage {
        sources_of
            .entry(row.file_id)
            .or_default()
            .insert(&row.source_key);
        files_of
            .entry(&row.source_key)
            .or_default()
            .insert(row.file_id);
        if partition_of
            .insert(row.file_id, &row.partition_location)
            .is_none()
            && partition_date(&row.partition_values).is_some_and(|d| d >= from && d <= to)
        {
            pending.push(row.file_id);
        }
    }
    let mut files: BTreeSet<i64> = BTreeSet::new();
    let mut sources: BTreeSet<&str> = BTreeSet::new();
    while let Some(file) = pending.pop() {
        if !files.insert(file) {
            continue;
        }
        for source in sources_of.get(&file).into_iter().flatten() {
            if sources.insert(source) {
                pending.extend(files_of[source].iter().filter(|f| !files.contains(f)));
            }
        }
    }
    let partitions: BTreeSet<&str> = files.iter().map(|f| partition_of[f]).collect();
    ReprocessScope {
        from: Some(from),
        to: Some(to),
        files: files.into_iter().collect(),
        sources: sources.into_iter().map(str::to_owned).collect(),
        partitions: partitions.into_iter().map(str::to_owned).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(file_id: i64, day: u32, source: &str) -> Lineage {
        Lineage {
            file_id,
            partition_location: format!("year=2024/month=05/day={day:02}"),
            partition_values: vec!["2024".into(), "05".into(), format!("{day:02}")],
            source_key: source.into(),
        }
    }

    #[test]
    fn the_scope_is_the_range_closed_under_lineage() {
        let date = |d| NaiveDate::from_ymd_opt(2024, 5, d).unwrap();
        // Files 1-2 are day 1, 3-4 day 2, 5 day 3. Source b fed day 1 and (late) day 2;
        // source d fed only day 3.
        let lineage = [
            row(1, 1, "a"),
            row(2, 1, "b"),
            row(3, 2, "b"),
            row(3, 2, "c"),
            row(4, 2, "c"),
            row(5, 3, "d"),
        ];
        let day2 = scope(&lineage, date(2), date(2));
        assert_eq!(day2.files, [2, 3, 4], "b's day-1 file comes along");
        assert_eq!(day2.sources, ["b", "c"]);
        assert_eq!(
            day2.partitions,
            ["year=2024/month=05/day=01", "year=2024/month=05/day=02"]
        );
        let day3 = scope(&lineage, date(3), date(3));
        assert_eq!((day3.files, day3.sources), (vec![5], vec!["d".to_owned()]));
        let none = scope(&lineage, date(9), date(10));
        assert!(none.files.is_empty() && none.sources.is_empty());
    }
}
