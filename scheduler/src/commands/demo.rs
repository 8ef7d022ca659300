//! `sluice demo`: the main job on embedded defaults in a fresh directory. For now it generates a
//! month of landings of an air-quality fleet, crawls them, converts them to curated Parquet with
//! the reconciliation, and shows the catalog; it grows with every capability.

use std::io::Write;
use std::time::Instant;

use anyhow::Context as _;
use jobs::convert::ConvertOptions;
use jobs::generate::{LandingsSpec, generate_landings};
use serde_json::json;

use super::Context;
use super::catalog::{show, tables};
use super::convert::convert_report;
use super::crawl::{crawl_options, crawl_report, generate_report};
use crate::cli::{CrawlArgs, DemoArgs};
use crate::output::Report;

fn step(text: &str) {
    let mut stderr = std::io::stderr();
    // Progress notes for the person watching; a closed stderr must not stop the demo.
    let _ = writeln!(stderr, "==> {text}");
}

pub async fn run(args: &DemoArgs, context: &Context) -> anyhow::Result<Report> {
    let started = Instant::now();
    if args.dir.exists()
        && args
            .dir
            .read_dir()
            .with_context(|| format!("cannot read {}", args.dir.display()))?
            .next()
            .is_some()
    {
        anyhow::bail!(
            "demo directory {} is not empty: pass --dir with a new directory",
            args.dir.display()
        );
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let dir = std::path::absolute(&args.dir)?;
    let mut config = context.config.clone();
    config.database = format!("sqlite://{}/.sluice/sluice.db", dir.display());
    config.lake = format!("file://{}/lake", dir.display());
    let demo = Context {
        config,
        progress: context.progress,
    };
    let (lake, catalog) = (demo.lake()?, demo.catalog().await?);

    let start = chrono::NaiveDate::from_ymd_opt(2024, 5, 1).expect("valid date");
    let spec = LandingsSpec::new(args.devices, args.days, args.seed, start);
    step(&format!(
        "generating {} days of Firehose landings from {} air-quality devices",
        args.days, args.devices
    ));
    let generated = generate_landings(&lake, &spec).await?;
    let generated = generate_report(&generated, lake.url(), &spec);
    step(&generated.text);

    step("crawling landing/ into the catalog");
    let crawl_args = CrawlArgs {
        prefix: "landing".into(),
        catalog: None,
        recrawl: false,
        sample_records: None,
        no_verify: false,
        schema_policy: None,
        table_prefix: String::new(),
    };
    let options = crawl_options(&crawl_args, &demo)?;
    let crawled = crawl_report(&jobs::crawler::crawl(&lake, &catalog, &options).await?);
    step(&crawled.text);

    step("crawling again: nothing new has landed");
    let recrawl =
        jobs::crawler::crawl(&lake, &catalog, &crawl_options(&crawl_args, &demo)?).await?;
    let db = demo.catalog_db(None)?;

    step("converting telemetry to event-time partitioned Parquet (curated/telemetry)");
    let converted = jobs::convert::convert(
        &lake,
        &lake,
        &catalog,
        &ConvertOptions::new(db.clone(), "telemetry"),
    )
    .await?;
    let conversion = convert_report(&converted);
    step(&conversion.text);
    step("converting again: every object is converted once");
    let again = jobs::convert::convert(
        &lake,
        &lake,
        &catalog,
        &ConvertOptions::new(db.clone(), "telemetry"),
    )
    .await?;
    step(&convert_report(&again).text);

    let listing = tables(&catalog, &db).await?;
    let telemetry = show(&catalog, &db, "telemetry").await?;
    catalog.close().await;

    let elapsed = started.elapsed().as_secs_f64();
    let text = format!(
        "recrawl: {} objects crawled, {} unchanged, {} ms\n\n{}\n\n{}\n\ndemo finished in {elapsed:.1} s. Try next:\n  \
         sluice --database {db_url} catalog versions telemetry\n  \
         sluice --database {db_url} catalog partitions telemetry\n  \
         sluice --database {db_url} catalog objects --failed\n  \
         sluice --database {db_url} catalog partitions telemetry_curated\n  \
         duckdb -c \"SELECT count(*) FROM read_parquet('{dir}/lake/curated/telemetry/**/*.parquet', hive_partitioning=true)\"\n  \
         sluice --database {db_url} --lake {lake_url} crawl landing --output json",
        recrawl.objects_crawled,
        recrawl.objects_unchanged,
        recrawl.duration_ms,
        listing.text,
        telemetry.text,
        db_url = demo.config.database,
        lake_url = demo.config.lake,
        dir = dir.display(),
    );
    Ok(Report::new(
        json!({
            "dir": dir, "database": demo.config.database, "lake": demo.config.lake,
            "generated": generated.json, "crawl": crawled.json, "convert": conversion.json,
            "recrawl": {"crawled": recrawl.objects_crawled, "unchanged": recrawl.objects_unchanged, "duration_ms": recrawl.duration_ms},
            "tables": listing.json, "telemetry": telemetry.json, "seconds": elapsed,
        }),
        text,
    ))
}
