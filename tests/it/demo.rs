//! `sluice demo` end to end on embedded defaults (a smaller fleet and shorter training than the
//! default run), its second day sent by the devices over MQTT to the real Mosquitto broker,
//! then the notebooks executed against what it left, as a data engineer would: the curated lake
//! with polars, the endpoint served by `sluice serve`, the drift reports. A second, smaller run
//! sends the day through the Firehose API. Both nights' second half is started by the landing
//! trigger, and the on-call webhook hears of the drift and of the failed export.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{run_sluice, sluice_binary};

fn python() -> String {
    std::env::var("SLUICE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SLUICE_TEST_PYTHON is not set: the notebooks run with nbclient in the virtual environment scripts/test.sh creates")
    })
}

#[test]
fn the_demo_runs_two_nights_and_the_notebooks_run_against_it() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run_sluice(
        dir.path(),
        &[
            "demo",
            "--dir",
            "demo",
            "--devices",
            "4",
            "--days",
            "21",
            "--epochs",
            "15",
            "--batches",
            "30",
            "--devices-via",
            "mqtt",
            "--output",
            "json",
        ],
    );
    assert!(ok, "{stderr}");
    let demo: Value = serde_json::from_str(&stdout).unwrap();
    for line in [
        "==> night 1",
        "Candidates",
        "candidate deepar: validation mean wQuantileLoss",
        "candidate mstl: validation mean wQuantileLoss",
        "    blend: ",
        "==> trigger new-landings",
        "==> the next day lands",
        "over MQTT (127.0.0.1:1883) through the bridge",
        "==> night 2: trigger new-landings saw",
        "drift DETECTED",
        "retrain check: retrain: no champion yet",
        "retrain check: retrain: drift detected (drift-",
        "export-forecasts FAILED: States.Http.StatusCode.503",
        "==> the on-call webhook received:",
    ] {
        assert!(
            stderr.contains(line),
            "the progress shows {line:?}: {stderr}"
        );
    }
    let nights = demo["nights"].as_array().unwrap();
    let (first, second) = (&nights[0]["output"], &nights[1]["output"]);
    for night in [first, second] {
        let convert = &night["convert"];
        assert_eq!(
            convert["read"].as_u64().unwrap(),
            convert["written"].as_u64().unwrap() + convert["quarantined"].as_u64().unwrap(),
            "{night}"
        );
        assert!(!night["decision"]["why"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        first["convert"]["read"].as_u64(),
        demo["generated"]["records"].as_u64(),
        "night 1 converts the month"
    );
    assert_eq!(
        second["convert"]["read"].as_u64(),
        demo["next_day"]["records"].as_u64(),
        "night 2 converts only the day that landed since"
    );
    assert_eq!(second["publish"]["version"], 2);
    second_night_is_triggered_and_its_failure_notified(&demo, "mqtt");
    assert_eq!(
        demo["drift"]["detected"], true,
        "the smoke is drift: {}",
        demo["drift"]
    );
    let smoky = demo["drift"]["reasons"][0].as_str().unwrap();
    assert!(smoky.contains("series drifted"), "{smoky}");
    assert_eq!(
        first["publish"]["published"], true,
        "the first version beats seasonal naive: {first}"
    );
    let forecast = &demo["forecast"];
    let items = forecast["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for item in items {
        let q = &item["quantiles"];
        let (low, mid, high) = (
            q["0.1"].as_array().unwrap(),
            q["0.5"].as_array().unwrap(),
            q["0.9"].as_array().unwrap(),
        );
        assert_eq!(low.len(), 24);
        for step in 0..24 {
            let (l, m, h) = (
                low[step].as_f64().unwrap(),
                mid[step].as_f64().unwrap(),
                high[step].as_f64().unwrap(),
            );
            assert!(l <= m && m <= h, "{item}");
        }
    }
    let demo_dir = dir.path().join("demo");
    for chart in ["forecast.svg", "forecast-vs-smoke.svg"] {
        let svg = std::fs::read_to_string(demo_dir.join(chart)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("median forecast"),
            "{chart}"
        );
    }
    let (ok, stdout, _) = run_sluice(
        dir.path(),
        &[
            "--database",
            demo["database"].as_str().unwrap(),
            "schedule",
            "list",
        ],
    );
    assert!(ok && stdout.contains("nightly-retrain"), "{stdout}");

    // The notebooks, against the demo and an endpoint served from it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut serve = Command::new(sluice_binary())
        .args([
            "--database",
            demo["database"].as_str().unwrap(),
            "--lake",
            demo["lake"].as_str().unwrap(),
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sluice serve never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    let notebooks = format!("{}/../notebooks", env!("CARGO_MANIFEST_DIR"));
    let mut books: Vec<String> = std::fs::read_dir(&notebooks)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ipynb"))
        .map(|p| p.display().to_string())
        .collect();
    books.sort();
    assert_eq!(books.len(), 3, "{books:?}");
    let output = Command::new(python())
        .arg(format!(
            "{}/../scripts/run-notebooks.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args(&books)
        .env("SLUICE_DEMO_DIR", &demo_dir)
        .env("SLUICE_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("SLUICE_TOKEN", demo["token"].as_str().unwrap())
        .env("MPLBACKEND", "Agg")
        .output()
        .expect("run the notebooks with nbclient");
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(
        output.status.success(),
        "a notebook failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for picture in ["explore.png", "fan-chart.png", "drift.png"] {
        assert!(demo_dir.join(picture).is_file(), "{picture}");
    }
}

/// What every demo's second night shows: the landing trigger started it with what landed, the
/// export to the partner failed, and the webhook received that failure and the drift.
fn second_night_is_triggered_and_its_failure_notified(demo: &Value, via: &str) {
    assert_eq!(demo["next_day"]["via"], via);
    // It ends with the console's address and an admin token to log in with.
    assert_eq!(demo["console"]["url"], "http://127.0.0.1:8080/ui");
    assert!(
        demo["console"]["token"]
            .as_str()
            .unwrap()
            .starts_with("sluice_")
    );
    let trigger = &demo["trigger"];
    assert!(trigger["objects"].as_u64().unwrap() > 0, "{trigger}");
    assert!(
        trigger["fire"]
            .as_str()
            .unwrap()
            .starts_with("new-landings@")
    );
    assert_eq!(trigger["execution"], demo["nights"][1]["execution"]);
    assert_eq!(demo["export"]["status"], "FAILED");
    assert_eq!(demo["export"]["error"], "States.Http.StatusCode.503");
    let notified = demo["notifications"].as_array().unwrap();
    let failure = notified
        .iter()
        .find(|n| n["kind"] == "execution.failed")
        .expect("the failure was notified");
    assert_eq!(failure["subject"], "export-forecasts");
    assert_eq!(failure["detail"]["error"], "States.Http.StatusCode.503");
    assert_eq!(failure["rule"], "on-call");
    if demo["drift"]["detected"] == true {
        assert!(
            notified.iter().any(|n| n["kind"] == "drift.detected"
                && n["detail"]["report_id"] == demo["drift"]["id"]),
            "{notified:?}"
        );
    }
}

#[test]
fn a_small_demo_sends_its_second_day_through_the_firehose_api() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run_sluice(
        dir.path(),
        &[
            "demo",
            "--dir",
            "demo",
            "--devices",
            "2",
            "--days",
            "5",
            "--epochs",
            "2",
            "--batches",
            "4",
            "--devices-via",
            "firehose",
            "--output",
            "json",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("through the Firehose API"), "{stderr}");
    let demo: Value = serde_json::from_str(&stdout).unwrap();
    let second = &demo["nights"][1]["output"];
    assert_eq!(
        second["convert"]["read"].as_u64(),
        demo["next_day"]["records"].as_u64(),
        "night 2 converts the records sent, malformed ones included (quarantined): {}",
        demo["next_day"]
    );
    assert_eq!(demo["next_day"]["sent"], demo["next_day"]["records"]);
    second_night_is_triggered_and_its_failure_notified(&demo, "firehose");
}
