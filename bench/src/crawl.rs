//! `sluice-bench crawl`: the crawler on a landing directory (the ETL benchmark's 216 objects),
//! a first crawl into a fresh catalog and a second with nothing new, against the targets.

use std::time::Instant;

use jobs::catalog::{Catalog, CatalogDbName, ConnectOptions};
use jobs::crawler::{CrawlOptions, crawl as run_crawl};
use jobs::lake::{Lake, LakeKey, S3Options};
use serde_json::json;

use scheduler::output::{Report, bytes, table};

use crate::BenchCrawlArgs;

const FIRST_CRAWL_TARGET_S: f64 = 3.0;
const RECRAWL_TARGET_S: f64 = 0.3;

pub async fn crawl(args: &BenchCrawlArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.source.is_dir(),
        "landing directory {} not found",
        args.source.display()
    );
    let lake = Lake::open(
        &format!("file://{}", std::path::absolute(&args.source)?.display()),
        &S3Options::default(),
    )?;
    let (mut first, mut again) = (Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..args.runs.max(1) {
        let scratch = tempfile::tempdir()?;
        let catalog = Catalog::connect(
            &format!("sqlite://{}/bench.db", scratch.path().display()),
            &ConnectOptions::default(),
        )
        .await?;
        let options = CrawlOptions::new(CatalogDbName::parse("bench")?, LakeKey::parse("")?);
        let started = Instant::now();
        let report = run_crawl(&lake, &catalog, &options).await?;
        first.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let recrawl = run_crawl(&lake, &catalog, &options).await?;
        again.push(started.elapsed().as_secs_f64());
        anyhow::ensure!(
            recrawl.objects_crawled == 0,
            "the recrawl read {} objects",
            recrawl.objects_crawled
        );
        catalog.close().await;
        last = Some(report);
    }
    let report = last.expect("at least one run");
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let median = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    };
    let (first_best, again_best) = (best(&first), best(&again));
    let verdict = |value: f64, target: f64| if value <= target { "met" } else { "MISSED" };
    let text = format!(
        "crawled {} objects ({}, {} records, {} tables, {} failed) from {}\n{}",
        report.objects_crawled,
        bytes(report.bytes_read as i64),
        report.records,
        report.tables_created.len(),
        report.objects_failed,
        args.source.display(),
        table(
            [
                "measure",
                "best s",
                "median s",
                "target s",
                "ratio to target",
                ""
            ],
            [
                [
                    "first crawl".to_owned(),
                    format!("{first_best:.3}"),
                    format!("{:.3}", median(&first)),
                    format!("{FIRST_CRAWL_TARGET_S}"),
                    format!("{:.2}", first_best / FIRST_CRAWL_TARGET_S),
                    verdict(first_best, FIRST_CRAWL_TARGET_S).to_owned()
                ],
                [
                    "recrawl, nothing new".to_owned(),
                    format!("{again_best:.3}"),
                    format!("{:.3}", median(&again)),
                    format!("{RECRAWL_TARGET_S}"),
                    format!("{:.2}", again_best / RECRAWL_TARGET_S),
                    verdict(again_best, RECRAWL_TARGET_S).to_owned()
                ],
            ]
        )
    );
    Ok(Report::new(
        json!({"objects": report.objects_crawled, "bytes": report.bytes_read, "records": report.records, "failed": report.objects_failed,
               "first_crawl_s": first, "recrawl_s": again, "first_crawl_best_s": first_best, "recrawl_best_s": again_best,
               "targets": {"first_crawl_s": FIRST_CRAWL_TARGET_S, "recrawl_s": RECRAWL_TARGET_S}}),
        text,
    ))
}
