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
    /// Files kept as they are because their lineage reaches objects deleted from the landing
    /// area (they cannot be read again), and those objects with what else shares their files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_files: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_sources: Vec<String>,
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

/// Lineage as a graph: the sources of each file and the files of each source.
struct Graph<'a> {
    sources_of: BTreeMap<i64, BTreeSet<&'a str>>,
    files_of: BTreeMap<&'a str, BTreeSet<i64>>,
}

impl<'a> Graph<'a> {
    fn new(lineage: &'a [Lineage]) -> Self {
        let mut graph = Graph {
            sources_of: BTreeMap::new(),
            files_of: BTreeMap::new(),
        };
        for row in lineage {
            graph
                .sources_of
                .entry(row.file_id)
                .or_default()
                .insert(&row.source_key);
            graph
                .files_of
                .entry(&row.source_key)
                .or_default()
                .insert(row.file_id);
        }
        graph
    }

    /// The files and sources connected to `files` and `sources` through lineage: every source
    /// of such a file, every file such a source fed, and so on.
    fn closure(
        &self,
        files: impl IntoIterator<Item = i64>,
        sources: impl IntoIterator<Item = &'a str>,
    ) -> (BTreeSet<i64>, BTreeSet<&'a str>) {
        let mut pending_files: Vec<i64> = files.into_iter().collect();
        let mut pending_sources: Vec<&str> = sources.into_iter().collect();
        let (mut files, mut sources) = (BTreeSet::new(), BTreeSet::new());
        while !pending_files.is_empty() || !pending_sources.is_empty() {
            while let Some(file) = pending_files.pop() {
                if files.insert(file) {
                    pending_sources.extend(self.sources_of.get(&file).into_iter().flatten());
                }
            }
            while let Some(source) = pending_sources.pop() {
                if sources.insert(source) {
                    pending_files.extend(self.files_of.get(source).into_iter().flatten());
                }
            }
        }
        (files, sources)
    }
}

/// A reprocess around objects deleted from the landing area (`gone`): the files their lineage
/// reaches cannot be rebuilt (their records are not there to read again), so they are kept, with
/// every source that shares them, and everything else in `scope` (a range's scope, or with
/// `None` a full reprocess of `sources`) is rebuilt as asked. `None` back: nothing is kept.
pub fn around_gone(
    lineage: &[Lineage],
    gone: &[String],
    scope: Option<ReprocessScope>,
    sources: &[String],
) -> Option<ReprocessScope> {
    let (kept_files, kept_sources) =
        Graph::new(lineage).closure([], gone.iter().map(String::as_str));
    if kept_files.is_empty() {
        return scope;
    }
    let mut scope = scope.unwrap_or_else(|| {
        let mut files: BTreeSet<i64> = BTreeSet::new();
        let mut partitions: BTreeSet<&str> = BTreeSet::new();
        for row in lineage {
            files.insert(row.file_id);
            partitions.insert(&row.partition_location);
        }
        ReprocessScope {
            files: files.into_iter().collect(),
            sources: sources.to_vec(),
            partitions: partitions.into_iter().map(str::to_owned).collect(),
            ..ReprocessScope::default()
        }
    });
    scope.files.retain(|f| !kept_files.contains(f));
    scope.sources.retain(|s| !kept_sources.contains(s.as_str()));
    let rebuilt: BTreeSet<&str> = lineage
        .iter()
        .filter(|row| scope.files.contains(&row.file_id))
        .map(|row| row.partition_location.as_str())
        .collect();
    scope.partitions = rebuilt.into_iter().map(str::to_owned).collect();
    scope.kept_files = kept_files.into_iter().collect();
    scope.kept_sources = kept_sources.into_iter().map(str::to_owned).collect();
    Some(scope)
}

/// The lineage closure of the files whose partitions fall in `from..=to`.
pub fn scope(lineage: &[Lineage], from: NaiveDate, to: NaiveDate) -> ReprocessScope {
    let mut partition_of: BTreeMap<i64, &str> = BTreeMap::new();
    let mut seeds: Vec<i64> = Vec::new();
    for row in lineage {
        if partition_of
            .insert(row.file_id, &row.partition_location)
            .is_none()
            && partition_date(&row.partition_values).is_some_and(|d| d >= from && d <= to)
        {
            seeds.push(row.file_id);
        }
    }
    let (files, sources) = Graph::new(lineage).closure(seeds, []);
    let partitions: BTreeSet<&str> = files.iter().map(|f| partition_of[f]).collect();
    ReprocessScope {
        from: Some(from),
        to: Some(to),
        files: files.into_iter().collect(),
        sources: sources.into_iter().map(str::to_owned).collect(),
        partitions: partitions.into_iter().map(str::to_owned).collect(),
        ..ReprocessScope::default()
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

    fn date(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 5, day).unwrap()
    }

    /// Files 1-2 are day 1, 3-4 day 2, 5 day 3. Source b fed day 1 and (late) day 2; source d
    /// fed only day 3.
    fn lineage() -> [Lineage; 6] {
        [
            row(1, 1, "a"),
            row(2, 1, "b"),
            row(3, 2, "b"),
            row(3, 2, "c"),
            row(4, 2, "c"),
            row(5, 3, "d"),
        ]
    }

    #[test]
    fn the_scope_is_the_range_closed_under_lineage() {
        let lineage = lineage();
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

    #[test]
    fn what_gone_objects_fed_is_kept_and_the_rest_rebuilt() {
        let lineage = lineage();
        let sources: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        // c is gone: its files (3, 4) and b, which shares file 3, with b's file 2, are kept.
        let full = around_gone(&lineage, &["c".into()], None, &sources).unwrap();
        assert_eq!(full.files, [1, 5]);
        assert_eq!(full.sources, ["a", "d", "e"]);
        assert_eq!(full.kept_files, [2, 3, 4]);
        assert_eq!(full.kept_sources, ["b", "c"]);
        assert_eq!(
            full.partitions,
            ["year=2024/month=05/day=01", "year=2024/month=05/day=03"]
        );
        let day3 = around_gone(
            &lineage,
            &["c".into()],
            Some(scope(&lineage, date(3), date(3))),
            &sources,
        )
        .unwrap();
        assert_eq!((day3.files, day3.sources), (vec![5], vec!["d".to_owned()]));
        // A gone object that fed nothing changes nothing.
        assert!(around_gone(&lineage, &["x".into()], None, &sources).is_none());
    }
}
