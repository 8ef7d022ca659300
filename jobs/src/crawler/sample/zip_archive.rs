//! Zip archives: each file analysed as its own object, the archive the sum of them.

use super::{ObjectAnalysis, ObjectFailure, SampleOptions, analyze};
use crate::crawler::sniff::Compression;

/// A zip archive: each file analysed as its own object, the archive the sum of them. Its files
/// must share a format family (one table); empty files are skipped.
pub(super) fn analyze_zip(
    bytes: &[u8],
    options: &SampleOptions,
) -> Result<ObjectAnalysis, ObjectFailure> {
    let mut total: Option<ObjectAnalysis> = None;
    for (name, data) in crate::crawler::decompress::zip_entries(bytes)? {
        if data.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let entry = analyze(&data, options).map_err(|failure| ObjectFailure::ZipEntry {
            name: name.clone(),
            detail: failure.to_string(),
        })?;
        match &mut total {
            None => total = Some(entry),
            Some(total) => {
                if total.format.family() != entry.format.family() {
                    return Err(ObjectFailure::ZipEntry {
                        name,
                        detail: format!(
                            "is {}, the archive's first file {}",
                            entry.format.as_str(),
                            total.format.as_str()
                        ),
                    });
                }
                total.schema.merge(&entry.schema);
                if let (Some(raw), Some(more)) =
                    (&mut total.raw_data_schema, &entry.raw_data_schema)
                {
                    raw.merge(more);
                }
                total.sampled_records += entry.sampled_records;
                total.malformed_records += entry.malformed_records;
                total.malformed_examples.extend(
                    entry
                        .malformed_examples
                        .into_iter()
                        .map(|example| format!("{name}: {example}")),
                );
                total.malformed_examples.truncate(5);
                total.records += entry.records;
                total.records_exact &= entry.records_exact;
                for (code, count) in entry.error_codes {
                    *total.error_codes.entry(code).or_default() += count;
                }
                total.decompressed_bytes += entry.decompressed_bytes;
            }
        }
    }
    let mut total = total.ok_or(ObjectFailure::Empty)?;
    total.compression = Compression::Zip;
    Ok(total)
}
