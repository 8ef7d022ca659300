//! Parquet landings streamed into the pipeline: read row group by row group with range
//! requests (`lake::ParquetRanges`), each row group decoded ([`ParquetDecoder`]) and handed on
//! before the next is fetched.
//!
//! [`ParquetDecoder`]: super::decode::parquet::ParquetDecoder

use arrow::datatypes::SchemaRef;

use super::decode::Decoded;
use super::pipeline::PipelineSpec;
use crate::Result;
use crate::catalog::conversion::SourceObject;
use crate::lake::{Lake, LakeKey};

/// A Parquet landing's rows through the table's mapping (text objects are mapped as they
/// decode).
pub(super) fn map_parquet(
    spec: &PipelineSpec,
    mut object: Decoded,
    key: &str,
) -> std::result::Result<Decoded, String> {
    if let Some(mapping) = &spec.mapping {
        object
            .apply_mapping(mapping, &[], key)
            .map_err(|e| e.to_string())?;
    }
    Ok(object)
}

/// A Parquet landing read row group by row group with range requests, each row group's rows
/// handed to `write` as they are decoded, so that no more than one row group is in memory. A row
/// group that cannot be read costs only its rows, quarantined with their row numbers and why;
/// an unreadable footer, or a column that cannot be read as the table's type, makes the object
/// unreadable (`Ok(Err(reason))`, before anything is written).
pub(super) fn stream_parquet(
    handle: &tokio::runtime::Handle,
    lake: &Lake,
    source: &SourceObject,
    schema: &SchemaRef,
    spec: &PipelineSpec,
    write: &mut dyn FnMut(Decoded) -> Result<()>,
) -> Result<std::result::Result<(), String>> {
    use futures::StreamExt;
    use parquet::arrow::ParquetRecordBatchStreamBuilder;
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};

    use super::decode::parquet::{BATCH_ROWS, ParquetDecoder};

    let key = source.key.as_str();
    let reader = crate::lake::ParquetRanges::new(
        lake,
        lake.path(&LakeKey::parse(key)?),
        source.size.max(0) as u64,
    );
    let metadata = match handle.block_on(ArrowReaderMetadata::load_async(
        &mut reader.clone(),
        ArrowReaderOptions::default(),
    )) {
        Ok(metadata) => metadata,
        Err(e) => return Ok(Err(format!("parquet footer unreadable: {e}"))),
    };
    let mut decoder = ParquetDecoder::new(metadata.schema(), schema, spec.allow_new_fields);
    for group in 0..metadata.metadata().num_row_groups() {
        let group_rows = metadata.metadata().row_group(group).num_rows().max(0) as u64;
        let before = decoder.rows();
        let mut part = Decoded::empty(decoder.schema().clone());
        let stream =
            ParquetRecordBatchStreamBuilder::new_with_metadata(reader.clone(), metadata.clone())
                .with_row_groups(vec![group])
                .with_batch_size(BATCH_ROWS)
                .build();
        match stream {
            Err(e) => {
                let reason = format!("row group {group} unreadable: {e}");
                decoder.lose(group_rows, key, &reason, &mut part);
            }
            Ok(mut stream) => {
                while let Some(batch) = handle.block_on(stream.next()) {
                    match batch {
                        Ok(batch) => {
                            if let Err(reason) = decoder.decode(&batch, key, &mut part) {
                                return Ok(Err(reason));
                            }
                        }
                        Err(e) => {
                            let done = decoder.rows() - before;
                            let reason = format!("row group {group} unreadable: {e}");
                            decoder.lose(group_rows.saturating_sub(done), key, &reason, &mut part);
                            break;
                        }
                    }
                }
            }
        }
        match map_parquet(spec, part, key) {
            Ok(part) => write(part)?,
            Err(reason) => return Ok(Err(reason)),
        }
    }
    Ok(Ok(()))
}
