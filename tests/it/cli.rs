//! The `sluice` binary as a user runs it: help everywhere, embedded defaults in the working
//! directory, JSON output, and one-line errors with a non-zero exit.

use tests::run_sluice;

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let commands: &[&[&str]] = &[
        &[],
        &["demo"],
        &["generate", "landings"],
        &["crawl"],
        &["catalog"],
        &["catalog", "tables"],
        &["catalog", "show"],
        &["catalog", "versions"],
        &["catalog", "diff"],
        &["catalog", "partitions"],
        &["catalog", "objects"],
        &["catalog", "crawls"],
        &["catalog", "set-policy"],
        &["catalog", "set-mapping"],
        &["catalog", "conflicts"],
        &["catalog", "accept-change"],
        &["catalog", "dismiss-change"],
        &["query"],
        &["db", "migrate"],
        &["train"],
        &["forecast"],
        &["convert"],
        &["compact"],
        &["vacuum"],
        &["workflow"],
        &["workflow", "validate"],
        &["workflow", "run"],
        &["workflow", "create"],
        &["workflow", "start"],
        &["workflow", "redrive"],
        &["worker"],
        &["server"],
        &["schedule"],
        &["schedule", "create"],
        &["schedule", "backfill"],
        &["ingest"],
        &["ingest", "stream"],
        &["ingest", "stream", "create"],
        &["ingest", "stream", "list"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let (ok, stdout, _) = run_sluice(dir.path(), &args);
        assert!(ok && stdout.contains("Usage: sluice"), "{args:?}: {stdout}");
    }
    // The product's help speaks of the product: the benchmarks are `sluice-bench`'s.
    let (_, help, _) = run_sluice(dir.path(), &["--help"]);
    assert!(
        help.starts_with("sluice: batch ETL and model-training workflows"),
        "{help}"
    );
    assert!(!help.contains("bench"), "{help}");
    let (ok, _, stderr) = run_sluice(dir.path(), &["bench", "crawl", "--help"]);
    assert!(
        !ok && stderr.contains("unrecognized subcommand"),
        "{stderr}"
    );
}

#[test]
fn generate_crawl_and_catalog_on_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run_sluice(
        dir.path(),
        &[
            "generate",
            "landings",
            "--devices",
            "3",
            "--days",
            "2",
            "--concat",
            "--output",
            "json",
        ],
    );
    assert!(ok, "{stderr}");
    let generated: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        dir.path().join("lake/landing/telemetry").is_dir(),
        "default lake is file://./lake"
    );

    let (ok, stdout, stderr) = run_sluice(dir.path(), &["crawl", "--output", "json"]);
    assert!(ok, "{stderr}");
    assert!(
        dir.path().join(".sluice/sluice.db").is_file(),
        "default database is sqlite://.sluice/sluice.db"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        report["objects_crawled"].as_u64().unwrap() + report["objects_failed"].as_u64().unwrap(),
        report["objects_listed"].as_u64().unwrap()
    );
    // The only objects that may fail here hold nothing but a malformed record.
    for failure in report["failures"].as_array().unwrap() {
        assert!(
            failure["reason"]
                .as_str()
                .unwrap()
                .starts_with("no record could be parsed"),
            "{failure}"
        );
    }
    assert_eq!(
        report["tables_created"],
        serde_json::json!(["errors_processing_failed", "telemetry"])
    );

    let (ok, stdout, _) = run_sluice(
        dir.path(),
        &["catalog", "show", "telemetry", "--output", "json"],
    );
    assert!(ok);
    let table: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        table["format"], "json_concatenated",
        "--concat writes Firehose's default framing"
    );
    let failed_records = report["failures"].as_array().unwrap().len() as u64;
    assert_eq!(
        table["records"].as_u64().unwrap() + failed_records,
        generated["records"].as_u64().unwrap()
    );

    let (ok, stdout, _) = run_sluice(dir.path(), &["catalog", "tables"]);
    assert!(
        ok && stdout.contains("telemetry") && stdout.contains("2 tables"),
        "{stdout}"
    );
    let (ok, stdout, _) = run_sluice(dir.path(), &["catalog", "partitions", "telemetry"]);
    assert!(
        ok && stdout.contains("year=2024/month=05/day=01/hour=00"),
        "{stdout}"
    );
    let (ok, stdout, _) = run_sluice(dir.path(), &["crawl"]);
    assert!(ok && stdout.contains("0 crawled"), "{stdout}");
    let (ok, stdout, _) = run_sluice(dir.path(), &["db", "migrate"]);
    assert!(
        ok && stdout.starts_with("0 migration(s) applied"),
        "{stdout}"
    );
    let (ok, stdout, _) = run_sluice(dir.path(), &["catalog", "diff", "telemetry", "1", "1"]);
    assert!(ok && stdout.contains("(no changes)"), "{stdout}");
}

#[test]
fn query_prunes_partitions_and_writes_csv_and_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    for args in [
        &["generate", "landings", "--devices", "3", "--days", "3"][..],
        &["crawl"],
        &["convert", "telemetry"],
    ] {
        let (ok, _, stderr) = run_sluice(path, args);
        assert!(ok, "{args:?}: {stderr}");
    }
    let sql = "SELECT device_id, count(*) AS n FROM telemetry_curated \
               WHERE year = 2024 AND month = 5 AND day = 2 GROUP BY device_id ORDER BY device_id";
    let (ok, stdout, stderr) = run_sluice(path, &["query", sql, "--output", "json"]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["row_count"], 3, "{report}");
    let read = &report["tables"][0];
    assert_eq!(read["partitions_read"], 1, "{report}");
    let total = read["partitions_total"].as_u64().unwrap();
    assert!(total >= 3, "{report}");
    assert!(
        report["files_read"].as_u64() < report["files_total"].as_u64(),
        "{report}"
    );
    let (ok, stdout, stderr) = run_sluice(path, &["query", sql]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "telemetry_curated: 1 of {total} partitions (year = 2024 AND month = 5 AND day = 2)"
        )),
        "{stdout}"
    );
    let (ok, stdout, stderr) = run_sluice(
        path,
        &["query", sql, "--format", "csv", "--parquet", "out.parquet"],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("device_id,n\n"), "{stdout}");
    assert!(
        std::fs::read(path.join("out.parquet"))
            .unwrap()
            .starts_with(b"PAR1")
    );
    let (ok, _, stderr) = run_sluice(path, &["query", "SELECT nope FROM telemetry_curated"]);
    assert!(!ok && stderr.starts_with("error: invalid sql:"), "{stderr}");
}

#[test]
fn failures_exit_non_zero_with_one_line_naming_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let check = |args: &[&str], expect: &str| {
        let (ok, stdout, stderr) = run_sluice(dir.path(), args);
        assert!(!ok, "{args:?} should fail: {stdout}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(expect),
            "{args:?}: {stderr}"
        );
    };
    check(
        &["catalog", "show", "nope"],
        "table \"nope\" not found in catalog database \"default\"",
    );
    check(
        &["catalog", "versions", "Bad-Name", "--catalog", "Bad"],
        "invalid catalog database name: \"Bad\"",
    );
    check(
        &["--lake", "ftp://x", "crawl"],
        "invalid lake url \"ftp://x\"",
    );
    check(
        &["--database", "mysql://x", "catalog", "tables"],
        "unsupported database url \"mysql://x\"",
    );
    check(
        &["crawl", "../outside"],
        "object key \"../outside\" is not allowed",
    );
    check(
        &["--config", "missing.toml", "catalog", "tables"],
        "config file missing.toml not found",
    );
    std::fs::write(dir.path().join("sluice.toml"), "lake = 3\n").unwrap();
    check(&["catalog", "tables"], "invalid configuration");
    std::fs::remove_file(dir.path().join("sluice.toml")).unwrap();
    std::fs::create_dir(dir.path().join("used")).unwrap();
    std::fs::write(dir.path().join("used/x"), "").unwrap();
    check(
        &["demo", "--dir", "used"],
        "demo directory used is not empty",
    );
    check(&["demo", "--days", "0"], "the demo needs --days 3 or more");
}
