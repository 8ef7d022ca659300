//! The ASL conformance corpus (`../shared/asl-conformance`): executions recorded on real AWS Step
//! Functions, run through sluice's interpreter. Every case must match its recorded status,
//! output (or error and cause) and, for `cases/`, its history's event types, except the ones
//! listed in `asl_known_failures.txt`; a listed case that passes must be taken off the list.
//! Where `../shared` is absent (a user's clone), the test is skipped (reported as ignored, with
//! the reason) rather than passed.

use std::collections::BTreeSet;
use std::path::PathBuf;

use regex::Regex;
use scheduler::asl::definition::StateMachine;
use scheduler::asl::run::{ExecutionInfo, ObjectTasks, VirtualClock, run};
use serde_json::Value;

fn corpus() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/asl-conformance");
    assert!(
        dir.is_dir(),
        "{} was there when the tests were built, and is gone",
        dir.display()
    );
    dir
}

/// Expected values may hold placeholder tokens standing for ARNs, times and names.
fn same(expected: &Value, actual: &Value, placeholders: &[String]) -> bool {
    match (expected, actual) {
        (Value::String(e), Value::String(a))
            if placeholders.iter().any(|p| e.contains(p.as_str())) =>
        {
            let mut pattern = regex::escape(e);
            for p in placeholders {
                pattern = pattern.replace(&regex::escape(p), ".*");
            }
            Regex::new(&format!("^{pattern}$")).is_ok_and(|r| r.is_match(a))
        }
        (Value::String(e), _) if placeholders.iter().any(|p| e == p) => true,
        (Value::Number(e), Value::Number(a)) => e.as_f64() == a.as_f64(),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(e, a)| same(e, a, placeholders))
        }
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len()
                && e.iter()
                    .all(|(k, v)| a.get(k).is_some_and(|av| same(v, av, placeholders)))
        }
        _ => expected == actual,
    }
}

fn check(case: &Value) -> Result<(), String> {
    let machine = StateMachine::parse(&case["definition"])
        .map_err(|e| format!("definition rejected: {e}"))?;
    let info = ExecutionInfo {
        name: "conformance".into(),
        state_machine: "conformance".into(),
    };
    let mut clock = VirtualClock::starting_at(1_717_027_200_000);
    // The objects a distributed Map's ItemReader reads, as the case created them.
    let mut tasks = ObjectTasks::default();
    for fixture in case["fixtures"].as_array().into_iter().flatten() {
        let text = |field: &str| fixture[field].as_str().unwrap_or_default().to_owned();
        tasks
            .objects
            .insert((text("bucket"), text("key")), text("body").into_bytes());
    }
    let outcome = run(
        &machine,
        case["input"].clone(),
        &info,
        &mut tasks,
        &mut clock,
    );
    let expected = &case["expected"];
    let placeholders: Vec<String> = case["normalization"]["placeholders"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if expected["status"] != outcome.status.as_str() {
        return Err(format!(
            "status {} (expected {}), failure {:?}",
            outcome.status.as_str(),
            expected["status"],
            outcome.failure
        ));
    }
    if let Some(output) = &outcome.output
        && !expected["output"].is_null()
        && !same(&expected["output"], output, &placeholders)
    {
        return Err(format!("output {output} (expected {})", expected["output"]));
    }
    if let Some(failure) = &outcome.failure {
        if !expected["error"].is_null()
            && !same(
                &expected["error"],
                &Value::String(failure.error.clone()),
                &placeholders,
            )
        {
            return Err(format!(
                "error {:?} (expected {})",
                failure.error, expected["error"]
            ));
        }
        if !expected["cause"].is_null()
            && !same(
                &expected["cause"],
                &Value::String(failure.cause.clone()),
                &placeholders,
            )
        {
            return Err(format!(
                "cause {:?} (expected {})",
                failure.cause, expected["cause"]
            ));
        }
    }
    if let Some(types) = expected["event_types"].as_array() {
        let mut want: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
        let mut got: Vec<&str> = outcome.events.iter().map(|e| e.kind.as_str()).collect();
        if case["event_order"] == "parallel_segments_sorted" {
            want.sort_unstable();
            got.sort_unstable();
        }
        if want != got {
            return Err(format!("events {got:?} (expected {want:?})"));
        }
    }
    Ok(())
}

#[test]
#[cfg_attr(
    not(shared_corpus),
    ignore = "skipped: ../shared/asl-conformance is not beside this clone"
)]
#[allow(
    clippy::print_stderr,
    reason = "the pass count is for the person running the suite"
)]
fn the_conformance_corpus_runs_as_recorded_on_aws() {
    let dir = corpus();
    let known: BTreeSet<String> = include_str!("asl_known_failures.txt")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(" -- ").next().unwrap_or(l).trim().to_owned())
        .collect();
    let mut paths: Vec<PathBuf> = [
        "cases",
        "output-only",
        "jsonata/cases",
        "distributed-map/cases",
    ]
    .iter()
    .flat_map(|sub| {
        std::fs::read_dir(dir.join(sub))
            .expect("corpus folder")
            .map(|e| e.expect("entry").path())
    })
    .collect();
    paths.sort();
    let (mut passed, mut failures, mut fixed) = (0, Vec::new(), Vec::new());
    for path in &paths {
        let case: Value =
            serde_json::from_slice(&std::fs::read(path).expect("case file")).expect("case JSON");
        let name = case["name"].as_str().expect("case name").to_owned();
        match check(&case) {
            Ok(()) if known.contains(&name) => fixed.push(name),
            Ok(()) => passed += 1,
            Err(reason) if !known.contains(&name) => failures.push(format!("{name}: {reason}")),
            Err(_) => {}
        }
    }
    eprintln!(
        "ASL conformance: {passed} of {} cases pass, {} listed as known failures",
        paths.len(),
        known.len()
    );
    assert!(
        failures.is_empty(),
        "{} cases fail that are not listed as known failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        fixed.is_empty(),
        "these listed cases pass now: take them off asl_known_failures.txt:\n{}",
        fixed.join("\n")
    );
}
