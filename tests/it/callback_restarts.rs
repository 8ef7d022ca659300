//! Callback tasks across a restart of every process, on Postgres: a `sluice server` (API,
//! scheduler and worker) starts two executions that wait for their tokens, and is killed with
//! SIGKILL. A new server answers one token over the HTTP API (SendTaskSuccess) and the
//! execution finishes with the answer; the other, never answered nor beaten for, fails with
//! `States.HeartbeatTimeout` by the check its wait left on the queue. The API's errors for
//! tokens (unknown 404, answered twice 409, output that is not JSON 400) are checked on the way.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{Backend, TestDb, free_port, run_sluice, spawn};

fn ask(heartbeat: Option<u32>) -> Value {
    let mut definition = json!({"StartAt": "Ask", "States": {
        "Ask": {"Type": "Task", "Resource": "sluice:approval.waitForTaskToken",
                "Parameters": {"token.$": "$$.Task.Token", "message": "ship it?", "details": {"run.$": "$$.Execution.Name"}},
                "ResultPath": "$.answer", "Next": "Done"},
        "Done": {"Type": "Succeed"}}});
    if let Some(seconds) = heartbeat {
        definition["States"]["Ask"]["HeartbeatSeconds"] = json!(seconds);
    }
    definition
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_callback_survives_a_restart_of_every_process() {
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let port = free_port();
    std::fs::write(
        path.join("sluice.toml"),
        format!(
            "database = \"{}\"\nlake = \"file://lake\"\n\n[api]\nlisten = \"127.0.0.1:{port}\"\n",
            db.url
        ),
    )
    .unwrap();
    for (name, heartbeat) in [("approve", None), ("beat", Some(4))] {
        let file = path.join(format!("{name}.asl.json"));
        std::fs::write(&file, ask(heartbeat).to_string()).unwrap();
        let (ok, _, stderr) = run_sluice(
            path,
            &[
                "workflow",
                "create",
                name,
                "--definition",
                file.to_str().unwrap(),
            ],
        );
        assert!(ok, "{stderr}");
    }
    let (ok, stdout, stderr) = run_sluice(
        path,
        &[
            "token", "create", "--scope", "admin", "--name", "ops", "--output", "json",
        ],
    );
    assert!(ok, "{stderr}");
    let bearer = serde_json::from_str::<Value>(&stdout).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let api = format!("http://127.0.0.1:{port}");
    let client = tests::http();
    let call = |method: reqwest::Method, route: &str, body: Option<Value>| {
        let mut request = client
            .request(method, format!("{api}{route}"))
            .bearer_auth(&bearer);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let up = || async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.get(format!("{api}/health")).send().await.is_err() {
            assert!(Instant::now() < deadline, "the server never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    let server = spawn(path, &["server"]);
    up().await;
    let mut ids = Vec::new();
    for workflow in ["approve", "beat"] {
        let (status, started) = call(
            reqwest::Method::POST,
            &format!("/workflows/{workflow}/executions"),
            Some(json!({"input": {"for": workflow}})),
        )
        .await;
        assert_eq!(status, 201, "{started}");
        ids.push(started["id"].as_str().unwrap().to_owned());
    }
    // Both wait for their tokens: the approval job ran and was given its token.
    let deadline = Instant::now() + Duration::from_secs(60);
    let tokens = loop {
        let (status, waiting) = call(reqwest::Method::GET, "/tasks", None).await;
        assert_eq!(status, 200, "{waiting}");
        let waiting = waiting.as_array().unwrap().clone();
        if waiting.len() == 2 {
            break waiting;
        }
        assert!(
            Instant::now() < deadline,
            "the tasks never waited: {waiting:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let token_of = |id: &str| {
        let task = tokens.iter().find(|t| t["execution"] == id).unwrap();
        assert_eq!(task["input"]["token"], task["token"], "{task}");
        assert_eq!(task["input"]["message"], "ship it?");
        task["token"].as_str().unwrap().to_owned()
    };
    let (approve, _beat) = (token_of(&ids[0]), token_of(&ids[1]));

    server.kill();
    let _server = spawn(path, &["server"]);
    up().await;

    let (status, body) = call(
        reqwest::Method::POST,
        "/tasks/success",
        Some(json!({"taskToken": "nope", "output": "{}"})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = call(
        reqwest::Method::POST,
        "/tasks/success",
        Some(json!({"taskToken": approve, "output": "{not json"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("output: "),
        "{body}"
    );
    let (status, body) = call(
        reqwest::Method::POST,
        "/tasks/heartbeat",
        Some(json!({"taskToken": approve})),
    )
    .await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("WAITING")),
        "{body}"
    );
    let (status, body) = call(
        reqwest::Method::POST,
        "/tasks/success",
        Some(json!({"taskToken": approve, "output": "{\"approved\": true}"})),
    )
    .await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("SUCCEEDED")),
        "{body}"
    );
    let (status, body) = call(
        reqwest::Method::POST,
        "/tasks/failure",
        Some(json!({"taskToken": approve, "error": "Sluice.Rejected"})),
    )
    .await;
    assert_eq!(status, 409, "answered once: {body}");

    let finished = |id: String| {
        let call = &call;
        async move {
            // A step pushed just before the kill may be lost with it: the sweep (every 30 s)
            // enqueues it again 10 s after the wait ran out.
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let (_, execution) =
                    call(reqwest::Method::GET, &format!("/executions/{id}"), None).await;
                if execution["status"] != "RUNNING" {
                    return execution;
                }
                assert!(Instant::now() < deadline, "still running: {execution}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let approved = finished(ids[0].clone()).await;
    assert_eq!(approved["status"], "SUCCEEDED", "{approved}");
    assert_eq!(
        approved["output"],
        json!({"for": "approve", "answer": {"approved": true}})
    );
    let timed_out = finished(ids[1].clone()).await;
    assert_eq!(
        (&timed_out["status"], &timed_out["error"]),
        (&json!("FAILED"), &json!("States.HeartbeatTimeout")),
        "{timed_out}"
    );
    let (_, history) = call(
        reqwest::Method::GET,
        &format!("/executions/{}/history", ids[0]),
        None,
    )
    .await;
    let kinds: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSubmitted",
            "TaskSucceeded",
            "TaskStateExited",
            "SucceedStateEntered",
            "SucceedStateExited",
            "ExecutionSucceeded"
        ]
    );
}
