//! Parquet landings converted row group by row group, with range requests: a row group that
//! cannot be read costs only its rows, each quarantined with its row number and why, and the
//! object's other rows land and reconcile with the crawler's count.

use arrow::datatypes::DataType;
use jobs::lake::Lake;
use tests::{Backend, TestDb, put};

use crate::dirty_data::{convert_t, crawl_t};

/// `rows` readings as a Parquet file in two row groups, the landing's own types.
pub(crate) fn parquet_landing(rows: usize) -> Vec<u8> {
    parquet_in_groups(rows, rows / 2 + 1)
}

/// `rows` readings as a zstd Parquet file in row groups of `group_rows`.
fn parquet_in_groups(rows: usize, group_rows: usize) -> Vec<u8> {
    use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![
        Field::new("device_id", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            true,
        ),
        Field::new("pm25", DataType::Float64, true),
    ]));
    let start = 1_717_027_200_000_000_i64;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| format!("d{}", i % 3)),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    (0..rows).map(|i| start + i as i64 * 60_000_000),
                )
                .with_timezone("+00:00"),
            ),
            Arc::new(Float64Array::from_iter_values(
                (0..rows).map(|i| i as f64 / 4.0),
            )),
        ],
    )
    .unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(group_rows))
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

tests::on_both_backends!(a_bad_row_group_costs_only_its_rows);

async fn a_bad_row_group_costs_only_its_rows(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake = Lake::in_memory();
    let mut file = parquet_in_groups(300, 100);
    // Overwrite the middle row group's pm25 column chunk: its pages no longer decode.
    let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&bytes::Bytes::from(file.clone()))
        .unwrap();
    assert_eq!(metadata.num_row_groups(), 3);
    let (start, length) = metadata.row_group(1).column(2).byte_range();
    for byte in &mut file[start as usize..(start + length) as usize] {
        *byte = 0xff;
    }
    put(&lake, "t/2024/05/30/00/a.parquet", file).await;
    let crawled = crawl_t(&lake, &db).await;
    assert_eq!((crawled.objects_crawled, crawled.objects_failed), (1, 0));

    let report = convert_t(&lake, &db).await;
    assert_eq!(
        (
            report.records_read,
            report.records_written,
            report.records_quarantined
        ),
        (300, 200, 100),
        "{report:?}"
    );
    assert!(
        report.reconciled && report.unreadable.is_empty(),
        "{report:?}"
    );
    let quarantine = report.quarantine.expect("a quarantine file");
    let text = String::from_utf8(
        lake.get(&jobs::lake::LakeKey::parse(&quarantine).unwrap())
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let entries: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 100);
    assert_eq!(
        entries[0]["line"], 101,
        "row numbers count across row groups"
    );
    assert_eq!(entries[99]["line"], 200);
    assert!(
        entries[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("row group 1 unreadable"),
        "{}",
        entries[0]
    );
    let table = db
        .catalog
        .table(&crate::dirty_data::db_name(), "t_curated")
        .await
        .unwrap();
    assert_eq!(table.records, 200);
}
