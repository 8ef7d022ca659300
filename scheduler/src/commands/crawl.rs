//! `sluice generate landings` and `sluice crawl`.

use indicatif::{ProgressBar, ProgressStyle};
use jobs::catalog::SchemaPolicy;
use jobs::crawler::infer::Resolution;
use jobs::crawler::{CrawlReport, TableConflict};
use jobs::generate::{GenerateReport, LandingsSpec, generate_landings};
use jobs::lake::LakeKey;
use ops::{CrawlRequest, Observer, Progress};

use super::Context;
use crate::cli::{CrawlArgs, LandingsArgs};
use crate::output::{Report, bytes, table};

pub async fn generate(args: &LandingsArgs, context: &Context) -> anyhow::Result<Report> {
    let lake = context.lake()?;
    let spec = LandingsSpec {
        prefix: LakeKey::parse(&args.prefix)?,
        error_prefix: LakeKey::parse(&args.error_prefix)?,
        stream: args.stream.clone(),
        concat: args.concat,
        from_day: args.from_day,
        shift: args
            .shift_from_day
            .zip(args.shift_factor)
            .map(|(from_day, factor)| jobs::generate::Shift { from_day, factor }),
        ..LandingsSpec::new(args.devices, args.days, args.seed, args.start)
    };
    let report = generate_landings(&lake, &spec).await?;
    Ok(generate_report(&report, lake.url(), &spec))
}

pub fn generate_report(report: &GenerateReport, lake: &str, spec: &LandingsSpec) -> Report {
    let text = format!(
        "wrote {} objects ({}) of {} records under {lake}/{} ({} malformed, {} late) and {} processing-failed objects ({} envelopes) under {}",
        report.objects,
        bytes(report.bytes as i64),
        report.records,
        spec.prefix,
        report.malformed_records,
        report.late_records,
        report.error_objects,
        report.envelopes,
        spec.error_prefix,
    );
    Report::new(serde_json::to_value(report).expect("serializes"), text)
}

/// The crawl request the flags make.
pub fn crawl_request(args: &CrawlArgs) -> anyhow::Result<CrawlRequest> {
    Ok(CrawlRequest {
        prefix: args.prefix.clone(),
        catalog: args.catalog.clone(),
        recrawl: args.recrawl,
        sample_records: args.sample_records,
        verify: args.no_verify.then_some(false),
        schema_policy: args
            .schema_policy
            .as_deref()
            .map(str::parse::<SchemaPolicy>)
            .transpose()?,
        table_prefix: args.table_prefix.clone(),
    })
}

/// A progress bar over the crawl's objects, drawn once their number is known.
fn crawl_bar() -> Observer {
    let bar = ProgressBar::hidden();
    bar.set_style(
        ProgressStyle::with_template("crawling {bar:30} {pos}/{len} objects {elapsed}")
            .expect("valid template"),
    );
    Observer::new(move |event| match event {
        Progress::CrawlPlanned { objects } => {
            bar.set_length(objects as u64);
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        Progress::ObjectCrawled { .. } => bar.inc(1),
        _ => {}
    })
}

pub async fn crawl(args: &CrawlArgs, context: &Context) -> anyhow::Result<Report> {
    let observer = context.observer(crawl_bar);
    let report = context.ops.crawl(&crawl_request(args)?, &observer).await?;
    Ok(crawl_report(&report))
}

pub fn crawl_report(report: &CrawlReport) -> Report {
    let mut text = format!(
        "crawl {} of {:?}: {} listed, {} new, {} changed, {} unchanged; {} crawled, {} failed; {} records in {} partitions; {} ms\n",
        report.crawl_id,
        report.prefix,
        report.objects_listed,
        report.objects_new,
        report.objects_changed,
        report.objects_unchanged,
        report.objects_crawled,
        report.objects_failed,
        report.records,
        report.partitions,
        report.duration_ms,
    );
    for table_name in &report.tables_created {
        text.push_str(&format!("created table {table_name}\n"));
    }
    for change in &report.schema_versions {
        let d = &change.diff;
        if change.version.is_some_and(|v| v > 1) {
            text.push_str(&format!(
                "table {} schema version {}: {} added, {} widened, {} changed, {} removed\n",
                change.table,
                change.version.unwrap_or_default(),
                d.added.len(),
                d.widened.len(),
                d.changed.len(),
                d.removed.len()
            ));
        }
    }
    for change in &report.logged_changes {
        text.push_str(&format!(
            "table {} schema change logged (policy log): {} added, {} widened\n",
            change.table,
            change.diff.added.len(),
            change.diff.widened.len()
        ));
    }
    for split in &report.splits {
        text.push_str(&format!(
            "table {} split from {}: {}\n",
            split.table, split.location, split.reason
        ));
    }
    let counts = |counts: &[(String, u64)]| {
        counts
            .iter()
            .map(|(t, n)| format!("{n} {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for TableConflict { table, conflict } in &report.conflicts {
        let fate = match conflict.resolution {
            Resolution::Quarantined => "the others are quarantined at conversion",
            Resolution::WrittenAsText => "no type dominates, every value is written as text",
        };
        text.push_str(&format!(
            "conflict in {table}.{}: {} ({}): {}, {fate}\n",
            conflict.path,
            if conflict.counts.is_empty() {
                conflict.types.join(" vs ")
            } else {
                counts(&conflict.counts)
            },
            conflict
                .examples
                .iter()
                .map(|(t, e)| format!("{t}: {e}"))
                .collect::<Vec<_>>()
                .join(", "),
            conflict.resolved,
        ));
    }
    for change in &report.pending_changes {
        text.push_str(&format!(
            "pending type change in {}.{}: {} -> {} ({} in {} objects), held for a person: \
             `sluice catalog accept-change {} {} {}`\n",
            change.table,
            change.column,
            change.from,
            change.to,
            counts(&change.counts),
            change.objects_total,
            change.table,
            change.column,
            change.to,
        ));
    }
    if !report.failures.is_empty() {
        text.push_str(&table(
            ["failed object", "reason"],
            report
                .failures
                .iter()
                .map(|f| [f.key.clone(), f.reason.clone()]),
        ));
        text.push('\n');
    }
    Report::new(
        serde_json::to_value(report).expect("serializes"),
        text.trim_end().to_owned(),
    )
}
