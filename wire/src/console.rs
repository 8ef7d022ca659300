//! The console's forms and query strings (`application/x-www-form-urlencoded`, read as axum's
//! `Form` and `Query` read them, with serde_urlencoded), each with the checks that turn what a
//! browser sent into typed values: dates and times, JSON, version numbers, decisions, reasons,
//! and the console addresses a page may send a person back to. A refusal names the field. The
//! console's handlers (`scheduler::console`) call these and then the operations; the fuzz
//! targets call them alone.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What is wrong with a form: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Refused {
    pub field: &'static str,
    pub reason: String,
}

fn refused(field: &'static str, reason: impl Into<String>) -> Refused {
    Refused {
        field,
        reason: reason.into(),
    }
}

/// A form body or a query string as `T`, as the console's extractors read it.
pub fn read<T: DeserializeOwned>(body: &[u8]) -> Result<T, Refused> {
    serde_urlencoded::from_bytes(body).map_err(|e| refused("form", e.to_string()))
}

/// `to` when it is an address of the console (`/ui`, `/ui/...`, `/ui?...`): the only places a
/// page sends a person after a login or an edit, never another site.
pub fn console_address(to: &str) -> Option<&str> {
    let inside = to == "/ui" || to.starts_with("/ui/") || to.starts_with("/ui?");
    (inside && !to.contains('\\') && !to.chars().any(char::is_control)).then_some(to)
}

fn trimmed(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// A reason a person gives for a change: required, recorded as typed (trimmed).
pub fn reason(text: &str) -> Result<String, Refused> {
    trimmed(text).ok_or_else(|| refused("reason", "say why (it is recorded in the history)"))
}

/// `/ui/login`'s form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    pub token: String,
    #[serde(default)]
    pub next: Option<String>,
}

/// Where to go after logging in (`?next=`).
#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    pub next: Option<String>,
}

/// Where a login goes: `next` when it is a console address, else the console's first page.
pub fn next_address(next: Option<&str>) -> String {
    next.and_then(console_address).unwrap_or("/ui").to_owned()
}

/// A button's form: only the CSRF value (Stop, Redrive, Pause, Log out, ...).
#[derive(Debug, Default, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// The executions list's filters, as its form sends them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionFilter {
    #[serde(default)]
    pub workflow: String,
    #[serde(default)]
    pub status: String,
    /// First day, `YYYY-MM-DD` (UTC).
    #[serde(default)]
    pub from: String,
    /// Last day, included.
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub after: String,
}

/// What the filters ask the executions list for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionQuery {
    pub workflow: Option<String>,
    pub status: Option<String>,
    /// `YYYY-MM-DD`, included.
    pub started_from: Option<String>,
    /// `YYYY-MM-DD`, excluded: the day after the form's last day.
    pub started_before: Option<String>,
    pub after: Option<String>,
}

fn day(field: &'static str, text: &str) -> Result<Option<NaiveDate>, Refused> {
    match text.trim() {
        "" => Ok(None),
        day => NaiveDate::parse_from_str(day, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| refused(field, "a date, 2026-12-05")),
    }
}

impl ExecutionFilter {
    /// The list's query: `to` is a whole day, so the range ends the day after it.
    pub fn query(&self) -> Result<ExecutionQuery, Refused> {
        let from = day("from", &self.from)?;
        let before = day("to", &self.to)?.map(|d| d.succ_opt().unwrap_or(NaiveDate::MAX));
        Ok(ExecutionQuery {
            workflow: trimmed(&self.workflow),
            status: trimmed(&self.status),
            started_from: from.map(|d| d.to_string()),
            started_before: before.map(|d| d.to_string()),
            after: trimmed(&self.after),
        })
    }
}

/// A workflow page's query: a version to show, two to compare, where Save goes back to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShownQuery {
    #[serde(default)]
    pub version: Option<i64>,
    #[serde(default)]
    pub from: Option<i64>,
    #[serde(default)]
    pub to: Option<i64>,
    /// Where Save goes back to: an execution's page, to redrive it after the edit.
    #[serde(default)]
    pub return_to: String,
}

/// Validate and Save: a definition from the editor.
#[derive(Debug, Deserialize)]
pub struct DefinitionForm {
    #[serde(default)]
    pub csrf: String,
    pub definition: String,
    #[serde(default)]
    pub return_to: String,
}

impl DefinitionForm {
    /// The editor's text as JSON (the error names its line and column).
    pub fn definition(&self) -> Result<Value, Refused> {
        serde_json::from_str(&self.definition)
            .map_err(|e| refused("definition", format!("not JSON: {e}")))
    }

    /// Where to go after saving: an execution's page, when the form came from one.
    pub fn return_to(&self) -> Option<&str> {
        console_address(&self.return_to).filter(|to| to.starts_with("/ui/"))
    }
}

/// Start: an input and an optional execution name.
#[derive(Debug, Default, Deserialize)]
pub struct StartForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub input: String,
    #[serde(default)]
    pub name: String,
}

impl StartForm {
    /// The input, when one was given, as JSON.
    pub fn input(&self) -> Result<Option<Value>, Refused> {
        match self.input.trim() {
            "" => Ok(None),
            text => serde_json::from_str(text)
                .map(Some)
                .map_err(|e| refused("input", format!("not JSON: {e}"))),
        }
    }

    pub fn name(&self) -> Option<String> {
        trimmed(&self.name)
    }
}

/// Backfill: a schedule's ticks in a range.
#[derive(Debug, Deserialize)]
pub struct BackfillForm {
    #[serde(default)]
    pub csrf: String,
    pub from: String,
    pub to: String,
}

/// A `datetime-local` input's value (or RFC 3339), read as UTC.
pub fn utc(field: &'static str, text: &str) -> Result<DateTime<Utc>, Refused> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
                .map(|t| t.and_utc())
        })
        .map_err(|_| refused(field, "a time, 2026-12-01T00:00 (UTC)"))
}

impl BackfillForm {
    pub fn range(&self) -> Result<(DateTime<Utc>, DateTime<Utc>), Refused> {
        Ok((utc("from", &self.from)?, utc("to", &self.to)?))
    }
}

/// The SQL box.
#[derive(Debug, Deserialize)]
pub struct QueryForm {
    #[serde(default)]
    pub csrf: String,
    pub sql: String,
}

/// A quarantine page's query: one kind of reason.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonQuery {
    #[serde(default)]
    pub reason: Option<String>,
}

/// Accept or Dismiss a type change held for a person.
#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    pub csrf: String,
    pub column: String,
    #[serde(rename = "type")]
    pub to: String,
    /// `accept` or `dismiss`.
    pub decision: String,
    #[serde(default)]
    pub reason: String,
}

/// What a person decided about a type change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Dismiss,
}

impl DecisionForm {
    pub fn decision(&self) -> Result<Decision, Refused> {
        match self.decision.as_str() {
            "accept" => Ok(Decision::Accept),
            "dismiss" => Ok(Decision::Dismiss),
            _ => Err(refused("decision", "accept or dismiss")),
        }
    }

    /// The reason, when one was given.
    pub fn reason(&self) -> Option<String> {
        trimmed(&self.reason)
    }
}

/// Promote a version to an alias.
#[derive(Debug, Deserialize)]
pub struct PromoteForm {
    #[serde(default)]
    pub csrf: String,
    pub version: String,
    #[serde(default)]
    pub alias: String,
    #[serde(default)]
    pub reason: String,
}

impl PromoteForm {
    /// `3` or `v3`.
    pub fn version(&self) -> Result<u32, Refused> {
        self.version
            .trim()
            .trim_start_matches('v')
            .parse()
            .map_err(|_| refused("version", "a version number"))
    }
}

/// Roll an alias back to where it was.
#[derive(Debug, Deserialize)]
pub struct RollbackForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub alias: String,
    #[serde(default)]
    pub reason: String,
}

/// The alias a form names (`champion` when left empty), still to be checked as a name.
pub fn alias(text: &str) -> String {
    trimmed(text).unwrap_or_else(|| "champion".to_owned())
}

/// A forecast page's query: one series.
#[derive(Debug, Default, Deserialize)]
pub struct ItemQuery {
    #[serde(default)]
    pub item: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_addresses_are_gone_back_to() {
        assert_eq!(next_address(Some("/ui/executions/x")), "/ui/executions/x");
        assert_eq!(next_address(Some("/ui?a=1")), "/ui?a=1");
        for elsewhere in [
            "https://evil.example/",
            "//evil.example",
            "/ui\\@evil",
            "/uievil",
            "/ui/\n",
        ] {
            assert_eq!(next_address(Some(elsewhere)), "/ui", "{elsewhere:?}");
        }
        let form: DefinitionForm = read(b"definition=%7B%7D&return_to=%2F%2Fevil").unwrap();
        assert_eq!(form.return_to(), None);
        assert_eq!(form.definition().unwrap(), serde_json::json!({}));
    }

    /// A number in a saved definition reads back the same: serde_json's default float parsing
    /// moved 111111111111111111111111 by an ulp on every save and load (found by the
    /// console_forms fuzzer; fixed by its `float_roundtrip` feature).
    #[test]
    fn a_definitions_numbers_survive_a_save_and_a_load() {
        for number in [
            "111111111111111111111111",
            "0.30000000000000004",
            "2.5e-308",
        ] {
            let form: DefinitionForm = read(format!("definition={number}").as_bytes()).unwrap();
            let saved = form.definition().unwrap();
            let loaded: Value = serde_json::from_str(&saved.to_string()).unwrap();
            assert_eq!(loaded, saved, "{number}");
        }
    }

    #[test]
    fn filters_become_a_range_of_days() {
        let filter: ExecutionFilter =
            read(b"status=failed&from=2026-12-01&to=2026-12-04&workflow=+").unwrap();
        let query = filter.query().unwrap();
        assert_eq!(query.started_before.as_deref(), Some("2026-12-05"));
        assert_eq!(query.started_from.as_deref(), Some("2026-12-01"));
        assert_eq!(
            (query.workflow, query.status.as_deref()),
            (None, Some("failed"))
        );
        let bad: ExecutionFilter = read(b"to=yesterday").unwrap();
        assert_eq!(
            bad.query().unwrap_err().to_string(),
            "to: a date, 2026-12-05"
        );
        assert!(read::<ExecutionFilter>(b"colour=red").is_err());
    }

    #[test]
    fn times_versions_decisions_and_reasons_are_checked() {
        assert_eq!(
            utc("from", "2026-12-01T02:00").unwrap().to_rfc3339(),
            "2026-12-01T02:00:00+00:00"
        );
        assert_eq!(
            utc("to", "2026-12-01T02:00:00+01:00").unwrap().to_rfc3339(),
            "2026-12-01T01:00:00+00:00"
        );
        assert_eq!(utc("to", "tomorrow").unwrap_err().field, "to");
        let promote: PromoteForm = read(b"version=v3&reason=+better+").unwrap();
        assert_eq!(promote.version(), Ok(3));
        assert_eq!(reason(&promote.reason).unwrap(), "better");
        assert_eq!(reason(" ").unwrap_err().field, "reason");
        assert_eq!(alias(""), "champion");
        let decision: DecisionForm = read(b"column=pm25&type=string&decision=maybe").unwrap();
        assert_eq!(decision.decision().unwrap_err().field, "decision");
        let start: StartForm = read(b"input=%7B%22a%22%3A1%7D&name=+n+").unwrap();
        assert_eq!(start.input().unwrap(), Some(serde_json::json!({"a": 1})));
        assert_eq!(start.name().as_deref(), Some("n"));
        assert!(read::<StartForm>(b"input=%7Bnot").unwrap().input().is_err());
    }
}
