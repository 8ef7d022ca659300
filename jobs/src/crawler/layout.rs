//! Key layout: which part of an object key is the table's location and which segments are
//! partitions. Hive `key=value` segments become named columns; Firehose's `YYYY/MM/DD/HH` arrival
//! folders become `year, month, day, hour` (not Glue's `partition_0..3`).

/// Where an object sits: its table root, partition values and partition folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    /// The key prefix shared by the table's objects (no trailing slash).
    pub table_root: String,
    /// Partition columns and their values, root to leaf.
    pub partition: Vec<(String, String)>,
    /// The folder holding the object (the partition's location).
    pub partition_location: String,
}

impl KeyLayout {
    /// The names of the partition columns.
    pub fn partition_keys(&self) -> Vec<String> {
        self.partition
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    }
}

fn digits(segment: &str, len: usize, range: std::ops::RangeInclusive<u32>) -> bool {
    segment.len() == len
        && segment.bytes().all(|b| b.is_ascii_digit())
        && segment.parse::<u32>().is_ok_and(|n| range.contains(&n))
}

/// Splits a key into table root, partitions and partition location.
pub fn layout(key: &str) -> KeyLayout {
    let dirs: Vec<&str> = match key.rsplit_once('/') {
        Some((dirs, _file)) => dirs.split('/').collect(),
        None => Vec::new(),
    };
    let mut end = dirs.len();
    let mut partition: Vec<(String, String)> = Vec::new();
    loop {
        let tail = &dirs[..end];
        let firehose = |n: usize| {
            tail.len() >= n
                && digits(tail[tail.len() - n], 4, 1970..=9999)
                && digits(tail[tail.len() - n + 1], 2, 1..=12)
                && (n < 3 || digits(tail[tail.len() - n + 2], 2, 1..=31))
                && (n < 4 || digits(tail[tail.len() - n + 3], 2, 0..=23))
        };
        if firehose(4) || firehose(3) {
            let n = if firehose(4) { 4 } else { 3 };
            let names = ["year", "month", "day", "hour"];
            let values = tail[tail.len() - n..].iter().enumerate().rev();
            for (i, value) in values {
                partition.push((names[i].to_owned(), (*value).to_owned()));
            }
            end -= n;
        } else if let Some((name, value)) = tail.last().and_then(|segment| segment.split_once('='))
        {
            if name.is_empty() {
                break;
            }
            partition.push((name.to_owned(), value.to_owned()));
            end -= 1;
        } else {
            break;
        }
    }
    partition.reverse();
    KeyLayout {
        table_root: dirs[..end].join("/"),
        partition,
        partition_location: dirs.join("/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(key: &str, root: &str, partition: &[(&str, &str)]) {
        let got = layout(key);
        assert_eq!(got.table_root, root, "{key}");
        let want: Vec<(String, String)> = partition
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        assert_eq!(got.partition, want, "{key}");
    }

    #[test]
    fn firehose_and_hive_partitions_are_named() {
        check(
            "landing/telemetry/2024/05/30/07/s-1-2024-05-30-07-12-00-x.gz",
            "landing/telemetry",
            &[
                ("year", "2024"),
                ("month", "05"),
                ("day", "30"),
                ("hour", "07"),
            ],
        );
        check(
            "t/region=eu/dt=2024-05-30/part-0.json",
            "t",
            &[("region", "eu"), ("dt", "2024-05-30")],
        );
        check(
            "t/source=a/2024/05/30/f.gz",
            "t",
            &[
                ("source", "a"),
                ("year", "2024"),
                ("month", "05"),
                ("day", "30"),
            ],
        );
        check(
            "errors/processing-failed/2024/05/30/01/f.gz",
            "errors/processing-failed",
            &[
                ("year", "2024"),
                ("month", "05"),
                ("day", "30"),
                ("hour", "01"),
            ],
        );
        check("logs/access.log", "logs", &[]);
        check("file.json", "", &[]);
        check("t/2024/13/30/f.gz", "t/2024/13/30", &[]);
        assert_eq!(layout("a/b=1/c.json").partition_location, "a/b=1");
    }
}
