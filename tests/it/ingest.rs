//! Ingest through `sluice server`, with real clients: boto3's Firehose client (SigV4 with an
//! ingest token's access key) puts batches that crawling and conversion then see exactly;
//! Firehose's HTTP endpoint delivery retried with one request id lands once; a stream that
//! holds too much undelivered answers Firehose's throttling error and recovers; and a kill -9
//! of the server in the middle of a stream of acknowledged batches loses none of them.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tests::{Process, free_port, run_sluice};

fn python() -> String {
    std::env::var("SLUICE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SLUICE_TEST_PYTHON is not set: boto3 runs in the virtual environment scripts/test.sh creates")
    })
}

/// A directory with `sluice.toml` (SQLite, a file lake, the API on `port`, `extra` appended).
fn setup(port: u16, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sluice.toml"),
        format!(
            "database = \"sqlite://sluice.db\"\nlake = \"file://lake\"\n\n[api]\nlisten = \"127.0.0.1:{port}\"\n{extra}"
        ),
    )
    .unwrap();
    dir
}

fn sluice_json(dir: &Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    let (ok, stdout, stderr) = run_sluice(dir, &args);
    assert!(ok, "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

/// A directory (see [`setup`]) with an ingest token (returned: the token and its access key)
/// and a stream `telemetry` under `landing/telemetry/`, created with `flags`.
fn with_stream(port: u16, extra: &str, flags: &[&str]) -> (tempfile::TempDir, Value) {
    let dir = setup(port, extra);
    let keys = sluice_json(
        dir.path(),
        &["token", "create", "--scope", "ingest", "--name", "plant"],
    );
    assert_eq!(keys["scope"], "ingest");
    let mut args = vec![
        "ingest",
        "stream",
        "create",
        "telemetry",
        "--prefix",
        "landing/telemetry/",
    ];
    args.extend(flags);
    let created = sluice_json(dir.path(), &args);
    assert_eq!(created["version"], 1, "{created}");
    (dir, keys)
}

async fn start_server(dir: &Path, port: u16) -> Process {
    tests::spawn_server(dir, port, &["server", "--no-worker"]).await
}

fn landed(dir: &Path, prefix: &str) -> Vec<Value> {
    tests::lake_records(dir, prefix)
}

/// Waits until `count` records have landed under `prefix`.
async fn wait_landed(dir: &Path, prefix: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let records = landed(dir, prefix);
        if records.len() >= count {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} records landed under {prefix}",
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn reading(seq: u64) -> Value {
    json!({"device_id": format!("aq-{:04}", seq % 7), "ts": "2026-12-05T03:00:00.000Z",
           "seq": seq, "pm25": 10.0 + (seq % 13) as f64})
}

const BOTO3: &str = r#"
import json, sys
import boto3, botocore
endpoint, key, secret = sys.argv[1:4]
def client(secret):
    return boto3.client("firehose", endpoint_url=endpoint, region_name="eu-west-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=botocore.config.Config(retries={"max_attempts": 1}))
firehose = client(secret)
out = {}
out["describe"] = firehose.describe_delivery_stream(DeliveryStreamName="telemetry")["DeliveryStreamDescription"]
out["describe"].pop("CreateTimestamp"); out["describe"].pop("LastUpdateTimestamp")
batches = []
for b in range(3):
    records = [{"Data": (json.dumps({"device_id": "aq-%04d" % (s % 7), "ts": "2026-12-05T03:00:00.000Z",
                                     "seq": s, "pm25": 10.0 + s % 13})).encode()}
               for s in range(b * 500, b * 500 + 500)]
    answer = firehose.put_record_batch(DeliveryStreamName="telemetry", Records=records)
    batches.append({"failed": answer["FailedPutCount"],
                    "ids": len({r["RecordId"] for r in answer["RequestResponses"]})})
out["batches"] = batches
one = json.dumps({"device_id": "aq-0000", "ts": "2026-12-05T03:00:00.000Z", "seq": 1500, "pm25": 1.0})
out["one"] = "RecordId" in firehose.put_record(DeliveryStreamName="telemetry", Record={"Data": one.encode()})
def error(call):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    return None
out["wrong_secret"] = error(lambda: client("not-the-secret").put_record(
    DeliveryStreamName="telemetry", Record={"Data": b"{}"}))
out["unknown_stream"] = error(lambda: firehose.put_record(
    DeliveryStreamName="nope", Record={"Data": b"{}"}))
out["too_large"] = error(lambda: firehose.put_record(
    DeliveryStreamName="telemetry", Record={"Data": b"x" * (1000 * 1024 + 1)}))
out["created"] = firehose.create_delivery_stream(
    DeliveryStreamName="second", DeliveryStreamType="DirectPut",
    ExtendedS3DestinationConfiguration={
        "RoleARN": "arn:aws:iam::123456789012:role/firehose",
        "BucketARN": "arn:aws:s3:::plant", "Prefix": "landing/second/",
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60},
        "CompressionFormat": "GZIP"})["DeliveryStreamARN"]
out["created_again"] = error(lambda: firehose.create_delivery_stream(
    DeliveryStreamName="second",
    ExtendedS3DestinationConfiguration={"RoleARN": "arn:aws:iam::123456789012:role/firehose",
                                        "BucketARN": "arn:aws:s3:::plant", "Prefix": "x/"}))
out["listed"] = firehose.list_delivery_streams()["DeliveryStreamNames"]
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_puts_batches_that_crawl_and_convert_then_see_exactly() {
    let port = free_port();
    let (dir, keys) = with_stream(
        port,
        "",
        &["--buffer-seconds", "1", "--gzip", "--append-newline"],
    );
    let path = dir.path();
    let _server = start_server(path, port).await;

    let output = std::process::Command::new(python())
        .args([
            "-c",
            BOTO3,
            &format!("http://127.0.0.1:{port}"),
            keys["access_key_id"].as_str().unwrap(),
            keys["secret_access_key"].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();
    let description = &out["describe"];
    assert_eq!(description["DeliveryStreamStatus"], "ACTIVE", "{out}");
    assert_eq!(
        description["DeliveryStreamARN"],
        "arn:aws:firehose:eu-west-1:000000000000:deliverystream/telemetry"
    );
    let destination = &description["Destinations"][0]["ExtendedS3DestinationDescription"];
    assert_eq!(destination["Prefix"], "landing/telemetry/");
    assert_eq!(destination["CompressionFormat"], "GZIP");
    assert_eq!(
        destination["BufferingHints"],
        json!({"SizeInMBs": 5, "IntervalInSeconds": 1})
    );
    assert_eq!(
        out["batches"],
        json!(vec![json!({"failed": 0, "ids": 500}); 3]),
        "{out}"
    );
    assert_eq!(out["one"], true);
    assert_eq!(out["wrong_secret"], "InvalidSignatureException", "{out}");
    assert_eq!(out["unknown_stream"], "ResourceNotFoundException", "{out}");
    assert_eq!(out["too_large"], "InvalidArgumentException", "{out}");
    assert_eq!(
        out["created"],
        "arn:aws:firehose:eu-west-1:000000000000:deliverystream/second"
    );
    assert_eq!(out["created_again"], "ResourceInUseException", "{out}");
    assert_eq!(out["listed"], json!(["second", "telemetry"]));

    // Firehose's HTTP endpoint delivery, gzip'd, sent twice with one request id (a retry),
    // the same token as its access key.
    let token = keys["token"].as_str().unwrap().to_owned();
    let body = json!({"requestId": "req-1", "timestamp": 1,
        "records": (1501..1511).map(|s| json!({"data": base64::engine::general_purpose::STANDARD.encode(reading(s).to_string())})).collect::<Vec<_>>()});
    let gzipped = tests::gzip(body.to_string().as_bytes());
    let client = tests::http();
    for attempt in 0..2 {
        let response = client
            .post(format!(
                "http://127.0.0.1:{port}/ingest/streams/telemetry/records"
            ))
            .header("x-amz-firehose-request-id", "req-1")
            .header("x-amz-firehose-access-key", &token)
            .header("content-encoding", "gzip")
            .body(gzipped.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "attempt {attempt}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["requestId"], "req-1");
        assert!(answer["timestamp"].as_i64().unwrap() > 0);
        assert!(answer.get("errorMessage").is_none(), "{answer}");
    }
    let refused = client
        .post(format!(
            "http://127.0.0.1:{port}/ingest/streams/telemetry/records"
        ))
        .header("x-amz-firehose-request-id", "req-2")
        .header("x-amz-firehose-access-key", "sluice_nope_nope")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["requestId"], "req-2");
    assert!(
        refused["errorMessage"].as_str().unwrap().contains("token"),
        "{refused}"
    );
    let stats = stream_stats(path, &client, port).await;
    let telemetry = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == "telemetry")
        .unwrap();
    assert_eq!(
        telemetry["retries_deduplicated"], 1,
        "the retry is counted, not written: {telemetry}"
    );

    let records = wait_landed(path, "landing/telemetry", 1511).await;
    let mut seen = HashMap::new();
    for record in &records {
        *seen.entry(record["seq"].as_u64().unwrap()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 1511, "every record once");
    assert!(seen.values().all(|&n| n == 1), "no record twice");
    // Object keys are Firehose's: prefix, UTC hour, `<stream>-<version>-<time>-<uuid>.gz`.
    let hour = std::fs::read_dir(path.join("lake/landing/telemetry"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(
        hour.file_name().unwrap().to_str().unwrap().len() == 4,
        "{hour:?}"
    );

    let crawl = sluice_json(path, &["crawl"]);
    assert_eq!(crawl["tables_created"], json!(["telemetry"]), "{crawl}");
    sluice_json(path, &["convert", "telemetry"]);
    let counted = sluice_json(
        path,
        &[
            "query",
            "SELECT count(*) AS n, count(DISTINCT seq) AS d, min(seq) AS lo, max(seq) AS hi FROM telemetry_curated",
        ],
    );
    assert_eq!(
        counted["rows"],
        json!([{"n": 1511, "d": 1511, "lo": 0, "hi": 1510}]),
        "{counted}"
    );
}

/// `GET /ingest/stats` with a new admin token: each stream's figures.
async fn stream_stats(path: &Path, client: &reqwest::Client, port: u16) -> Value {
    let admin = sluice_json(path, &["token", "create", "--scope", "admin"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    client
        .get(format!("http://127.0.0.1:{port}/ingest/stats"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A PutRecordBatch over plain HTTP with a bearer token: the status and the body.
async fn put_batch(
    client: &reqwest::Client,
    port: u16,
    token: &str,
    seqs: std::ops::Range<u64>,
) -> reqwest::Result<(u16, Value)> {
    let records: Vec<Value> = seqs
        .map(|s| json!({"Data": base64::engine::general_purpose::STANDARD.encode(reading(s).to_string())}))
        .collect();
    let response = client
        .post(format!("http://127.0.0.1:{port}/"))
        .bearer_auth(token)
        .header("x-amz-target", "Firehose_20150804.PutRecordBatch")
        .header("content-type", "application/x-amz-json-1.1")
        .body(json!({"DeliveryStreamName": "telemetry", "Records": records}).to_string())
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_throttles_and_recovers() {
    let port = free_port();
    let (dir, keys) = with_stream(
        port,
        "\n[ingest]\nmax_buffered_mib = 1\n",
        &["--buffer-seconds", "2", "--append-newline"],
    );
    let path = dir.path();
    let token = keys["token"].as_str().unwrap().to_owned();
    let _server = start_server(path, port).await;
    let client = tests::http();
    // About 100 bytes a record: 1 MiB is some 10,000 records.
    let mut next = 0;
    let throttled = loop {
        let (status, body) = put_batch(&client, port, &token, next..next + 500)
            .await
            .unwrap();
        if status != 200 {
            break (status, body);
        }
        next += 500;
        assert!(next < 40_000, "never throttled");
    };
    assert_eq!(throttled.0, 500, "{throttled:?}");
    assert_eq!(
        throttled.1["__type"], "ServiceUnavailableException",
        "{throttled:?}"
    );
    assert!(
        throttled.1["message"]
            .as_str()
            .unwrap()
            .contains("slow down"),
        "{throttled:?}"
    );
    // Once the buffer is delivered the same batch goes in.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = put_batch(&client, port, &token, next..next + 500)
            .await
            .unwrap();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stream never took records again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let records = wait_landed(path, "landing/telemetry", next as usize + 500).await;
    assert_eq!(records.len(), next as usize + 500);
    // Operators see it: what was taken, what was refused, how long acknowledgements took.
    let stats = stream_stats(path, &client, port).await;
    let stream = &stats[0];
    assert_eq!(stream["stream"], "telemetry", "{stats}");
    assert_eq!(stream["records_accepted"], next + 500, "{stats}");
    assert!(stream["puts_refused"].as_u64().unwrap() >= 1, "{stats}");
    assert!(
        stream["objects_delivered"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    assert!(stream["ack_p99_ms"].as_f64().unwrap() > 0.0, "{stats}");
    let forbidden = client
        .get(format!("http://127.0.0.1:{port}/ingest/stats"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        forbidden.status(),
        403,
        "an ingest token does not read the figures"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_mid_stream_loses_no_acknowledged_record() {
    let port = free_port();
    let (dir, keys) = with_stream(
        port,
        "",
        &[
            "--buffer-seconds",
            "1",
            "--buffer-mib",
            "1",
            "--gzip",
            "--append-newline",
        ],
    );
    let path = dir.path();
    let token = keys["token"].as_str().unwrap().to_owned();
    let server = start_server(path, port).await;
    // Two clients send batches of 100 until the server dies; each keeps what was acknowledged.
    let mut clients = Vec::new();
    for client_id in 0..2u64 {
        let token = token.clone();
        clients.push(tokio::spawn(async move {
            let client = tests::http();
            let mut acknowledged = Vec::new();
            let mut sent = Vec::new();
            for batch in 0u64.. {
                let start = (client_id * 1_000_000) + batch * 100;
                sent.push(start..start + 100);
                match put_batch(&client, port, &token, start..start + 100).await {
                    Ok((200, body)) => {
                        assert_eq!(body["FailedPutCount"], 0, "{body}");
                        acknowledged.push(start..start + 100);
                    }
                    Ok((status, body)) => panic!("{status}: {body}"),
                    Err(_) => break,
                }
            }
            (acknowledged, sent)
        }));
    }
    // Kill once a few hundred batches are in (some objects delivered, some still buffered).
    let deadline = Instant::now() + Duration::from_secs(60);
    while landed(path, "landing/telemetry").len() < 20_000 {
        assert!(Instant::now() < deadline, "too slow to land 20,000 records");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill();
    let mut acknowledged = Vec::new();
    let mut sent = Vec::new();
    for client in clients {
        let (a, s) = client.await.unwrap();
        acknowledged.extend(a.into_iter().flatten());
        sent.extend(s.into_iter().flatten());
    }
    assert!(acknowledged.len() >= 20_000, "{}", acknowledged.len());

    // A new server replays the log: every acknowledged record lands, none twice.
    let _server = start_server(path, port).await;
    let records = wait_landed(path, "landing/telemetry", acknowledged.len()).await;
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for record in &records {
        *seen.entry(record["seq"].as_u64().unwrap()).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "records landed twice: {:?}",
        &twice[..twice.len().min(5)]
    );
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|s| !seen.contains_key(s))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // What landed beyond the acknowledged was sent (in flight when the server died).
    let sent: std::collections::HashSet<u64> = sent.into_iter().collect();
    assert!(seen.keys().all(|s| sent.contains(s)));
}
