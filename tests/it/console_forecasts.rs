//! The console's forecast pages against a real `sluice server`: a batch forecast made from a
//! dataset's test lines, then a day that lands since; the run's page draws the series' history,
//! median and band, and the actuals of the window read back from the table, equal to what
//! `sluice dataset` builds from the same table. A run made from a plain file of series reads
//! its actuals from the histories of the group's later runs, and finds the same values.

use serde_json::Value;
use tests::run_sluice;

use super::console::{client, login, page, server, sluice_json, token};

/// The cells of each row of the page's points table: time, step, mean, low, median, high,
/// actual.
fn point_rows(html: &str) -> Vec<Vec<String>> {
    let table = &html[html
        .find("class=\"forecast-points\"")
        .expect("a points table")..];
    let body = &table[table.find("<tbody>").unwrap()..table.find("</tbody>").unwrap()];
    body.split("<tr")
        .skip(1)
        .map(|row| {
            row.split("<td>")
                .skip(1)
                .map(|cell| {
                    let text = &cell[..cell.find("</td>").unwrap_or(cell.len())];
                    text.split(" <span").next().unwrap().trim().to_owned()
                })
                .collect()
        })
        .collect()
}

/// A series' target values by their time (`YYYY-MM-DD HH:MM`, hourly), from JSON lines.
fn values_of(path: &std::path::Path, item: &str) -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(path).unwrap();
    let line: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .rfind(|l| l["item_id"] == item)
        .unwrap();
    let start =
        chrono::NaiveDateTime::parse_from_str(line["start"].as_str().unwrap(), "%Y-%m-%d %H:%M:%S")
            .unwrap();
    line["target"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            let at = start + chrono::Duration::hours(i as i64);
            Some((at.format("%Y-%m-%d %H:%M").to_string(), v.as_f64()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forecast_page_draws_history_band_and_the_actuals_that_landed_since() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let step = |args: &[&str]| {
        let (ok, stdout, stderr) = run_sluice(path, args);
        assert!(ok, "{args:?}: {stderr}");
        stdout
    };
    let dataset = |out: &str| {
        step(&[
            "dataset",
            "telemetry",
            "--item",
            "device_id",
            "--target",
            "pm25",
            "--freq",
            "1h",
            "--prediction-length",
            "12",
            "--test-windows",
            "1",
            "--out",
            out,
        ]);
    };
    step(&["generate", "landings", "--devices", "3", "--days", "4"]);
    step(&["crawl"]);
    step(&["convert", "telemetry"]);
    dataset("ds");
    step(&[
        "train",
        "--train",
        "ds/train.jsonl",
        "--model-dir",
        "model",
        "--set",
        "time_freq=H",
        "--set",
        "context_length=12",
        "--set",
        "prediction_length=12",
        "--set",
        "epochs=1",
        "--set",
        "num_cells=8",
        "--set",
        "num_batches_per_epoch=2",
    ]);
    let published = sluice_json(
        path,
        &[
            "models",
            "publish",
            "--group",
            "aq",
            "--model-dir",
            "model",
            "--test",
            "ds/test.jsonl",
        ],
    );
    if published["published"] == false {
        step(&[
            "models",
            "status",
            "aq",
            "1",
            "pending",
            "--reason",
            "for the test",
        ]);
        step(&["models", "promote", "aq", "1", "--reason", "for the test"]);
    }
    let batch = |input: &str| -> String {
        sluice_json(
            path,
            &[
                "models",
                "batch-forecast",
                "--group",
                "aq",
                "--input",
                input,
                "--num-samples",
                "20",
            ],
        )["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // From the dataset's test lines (the dataset is recorded), and from a plain copy (not).
    let from_dataset = batch("ds/test.jsonl");
    std::fs::create_dir_all(path.join("plain")).unwrap();
    std::fs::copy(path.join("ds/test.jsonl"), path.join("plain/series.jsonl")).unwrap();
    let from_file = batch("plain/series.jsonl");

    // The next day lands and is converted; the next night forecasts from a longer dataset.
    step(&[
        "generate",
        "landings",
        "--devices",
        "3",
        "--days",
        "5",
        "--from-day",
        "4",
    ]);
    step(&["crawl"]);
    step(&["convert", "telemetry"]);
    dataset("ds2");
    let later = batch("ds2/test.jsonl");

    let admin = token(path, "admin", "forecaster");
    let (_server, base) = server(path).await;
    let client = client();
    let (cookie, _) = login(&client, &base, &admin).await;

    let (status, list) = page(&client, &format!("{base}/ui/forecasts"), &cookie).await;
    assert_eq!(status, 200, "{list}");
    for run in [&from_dataset, &from_file, &later] {
        assert!(
            list.contains(&format!("/ui/forecasts/aq/{run}")),
            "{run}: {list}"
        );
    }
    assert!(list.contains("table telemetry"), "{list}");
    assert!(list.contains("plain/series.jsonl"), "{list}");
    let (status, group) = page(&client, &format!("{base}/ui/forecasts/aq"), &cookie).await;
    assert_eq!(status, 200);
    assert!(group.contains(&from_dataset));

    let first_line = std::fs::read_to_string(path.join("ds/test.jsonl")).unwrap();
    let first_line: Value = serde_json::from_str(first_line.lines().next().unwrap()).unwrap();
    let item = first_line["item_id"].as_str().unwrap();
    let url = format!("{base}/ui/forecasts/aq/{from_dataset}?item={item}");
    let (status, html) = page(&client, &url, &cookie).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("<svg role=\"img\""),
        "the chart is inline SVG"
    );
    for legend in [
        "history",
        "median forecast",
        "80 % interval",
        "actuals landed since",
    ] {
        assert!(html.contains(legend), "{legend}: {html}");
    }
    assert!(html.contains("read from table telemetry"), "{html}");
    // Each point's actual is the value the dataset built since holds for that hour (the
    // generator leaves some hours without a reading: no actual, as in the dataset).
    let truth: std::collections::HashMap<String, f64> =
        values_of(&path.join("ds2/test.jsonl"), item)
            .into_iter()
            .collect();
    let rows = point_rows(&html);
    assert_eq!(rows.len(), 12);
    let mut landed = 0;
    for row in &rows {
        let expected = truth.get(&row[0][..16]);
        match expected {
            // Shown to two decimals.
            Some(v) => assert!(
                row[6].parse::<f64>().is_ok_and(|a| (a - v).abs() <= 0.0051),
                "{row:?}: {v}"
            ),
            None => assert_eq!(row[6], "—", "{row:?}"),
        }
        landed += usize::from(expected.is_some());
        let (low, high): (f64, f64) = (row[3].parse().unwrap(), row[5].parse().unwrap());
        assert!(low <= high, "{row:?}");
    }
    assert!(landed >= 9, "only {landed} of 12 hours landed");
    assert!(
        html.contains(&format!("{landed} of 12 points landed")),
        "{html}"
    );
    // The history is the series before the forecast: the last point is an hour before it.
    let history_end = values_of(&path.join("ds/test.jsonl"), item)
        .last()
        .unwrap()
        .0
        .clone();
    assert!(
        rows[0][0] > history_end,
        "{} after {history_end}",
        rows[0][0]
    );

    // The plain file's run has no dataset: its actuals come from the later run's history.
    let (status, plain) = page(
        &client,
        &format!("{base}/ui/forecasts/aq/{from_file}?item={item}"),
        &cookie,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        plain.contains("the group&#39;s 1 later run") || plain.contains("group's 1 later run"),
        "{plain}"
    );
    // The same values (the history keeps them as f32: equal to the shown precision).
    for (kept, read) in point_rows(&plain).iter().zip(&rows) {
        match (kept[6].parse::<f64>(), read[6].parse::<f64>()) {
            (Ok(a), Ok(b)) => assert!((a - b).abs() <= 0.011, "{kept:?} against {read:?}"),
            _ => assert_eq!(kept[6], read[6], "{kept:?} against {read:?}"),
        }
    }

    // The latest run's window has not landed yet.
    let (_, newest) = page(&client, &format!("{base}/ui/forecasts/aq/{later}"), &cookie).await;
    assert!(
        newest.contains("no actuals have landed for the forecast window yet"),
        "{newest}"
    );

    // Unknown runs and series are 404s that say what is missing; a predict token sees nothing.
    let (status, body) = page(&client, &format!("{base}/ui/forecasts/aq/nope"), &cookie).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("forecast run nope"), "{body}");
    let (status, body) = page(&client, &format!("{url}-x"), &cookie).await;
    assert_eq!(status, 404, "{body}");
    let predict = token(path, "predict", "app");
    let (predict_cookie, _) = login(&client, &base, &predict).await;
    let (status, _) = page(&client, &url, &predict_cookie).await;
    assert_eq!(status, 403);
}
