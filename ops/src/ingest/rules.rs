//! Rules that turn messages of a broker into a stream's records, as an AWS IoT rule does
//! (`SELECT device_id, pm25, topic(2) AS site FROM 'plant/+/telemetry'`), pure: a topic filter
//! (MQTT's `+` and `#`), the payload's fields to keep (all when none are named), and topic
//! segments added as fields (1-based, as IoT's `topic(n)`). A payload that is not a JSON
//! object cannot become a record: it goes to the stream's error output instead, with the
//! reason.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// A rule as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// An MQTT topic filter: `plant/+/telemetry`, `devices/#`.
    pub topic: String,
    /// The delivery stream its records go to.
    pub stream: String,
    /// The payload's fields to keep; all when empty.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Topic segments as fields: `{ site = 2 }` adds the topic's second segment as `site`.
    #[serde(default)]
    pub topic_fields: BTreeMap<String, usize>,
}

impl Rule {
    /// Checks the rule: a valid topic filter and stream name, segments from 1.
    pub fn check(&self) -> Result<()> {
        let segments: Vec<&str> = self.topic.split('/').collect();
        for (i, segment) in segments.iter().enumerate() {
            let bad_hash = segment.contains('#') && (*segment != "#" || i + 1 != segments.len());
            let bad_plus = segment.contains('+') && *segment != "+";
            if self.topic.is_empty() || bad_hash || bad_plus {
                return Err(Error::invalid(
                    "topic",
                    format!(
                        "{:?} is not an MQTT topic filter ('+' is a whole segment, '#' the last one)",
                        self.topic
                    ),
                ));
            }
        }
        super::streams::check_name(&self.stream)?;
        if let Some((field, _)) = self.topic_fields.iter().find(|(_, n)| **n == 0) {
            return Err(Error::invalid(
                format!("topic_fields.{field}"),
                "segments count from 1, as IoT rules' topic(1)",
            ));
        }
        Ok(())
    }

    /// Whether `topic` matches the rule's filter.
    pub fn matches(&self, topic: &str) -> bool {
        let mut filter = self.topic.split('/');
        let mut name = topic.split('/');
        loop {
            match (filter.next(), name.next()) {
                (Some("#"), _) => return !topic.starts_with('$'),
                (Some("+"), Some(_)) => {}
                (Some(f), Some(n)) if f == n => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    /// The record a message becomes, or why it cannot become one.
    pub fn record(&self, topic: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        let value: Value =
            serde_json::from_slice(payload).map_err(|e| format!("the payload is not JSON: {e}"))?;
        let Value::Object(mut object) = value else {
            return Err("the payload is JSON but not an object".into());
        };
        if !self.fields.is_empty() {
            let mut kept = Map::new();
            for field in &self.fields {
                if let Some(value) = object.remove(field) {
                    kept.insert(field.clone(), value);
                }
            }
            object = kept;
        }
        let segments: Vec<&str> = topic.split('/').collect();
        for (field, n) in &self.topic_fields {
            if let Some(segment) = segments.get(n - 1) {
                object.insert(field.clone(), Value::String((*segment).to_owned()));
            }
        }
        Ok(serde_json::to_vec(&Value::Object(object)).expect("a JSON object serializes"))
    }
}

/// The first rule whose filter `topic` matches.
pub fn route<'a>(rules: &'a [Rule], topic: &str) -> Option<&'a Rule> {
    rules.iter().find(|rule| rule.matches(topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(topic: &str) -> Rule {
        Rule {
            topic: topic.into(),
            stream: "telemetry".into(),
            fields: vec![],
            topic_fields: BTreeMap::new(),
        }
    }

    #[test]
    fn topic_filters_match_as_mqtt_says() {
        for (filter, topic, expect) in [
            ("plant/+/telemetry", "plant/berlin/telemetry", true),
            ("plant/+/telemetry", "plant/berlin/status", false),
            ("plant/+/telemetry", "plant/berlin/a/telemetry", false),
            ("plant/#", "plant/berlin/a/telemetry", true),
            ("plant/#", "plant", true),
            ("#", "$SYS/broker/uptime", false),
            ("a/b", "a/b", true),
            ("a/b", "a/b/c", false),
            ("+/+", "a/b", true),
        ] {
            assert_eq!(rule(filter).matches(topic), expect, "{filter} {topic}");
        }
        for bad in ["", "a/#/b", "a/b#", "a+/b"] {
            assert!(rule(bad).check().is_err(), "{bad}");
        }
        assert!(rule("plant/+/devices/#").check().is_ok());
    }

    #[test]
    fn messages_become_records_with_fields_and_topic_segments() {
        let mut with = rule("plant/+/devices/+/telemetry");
        with.fields = vec!["ts".into(), "pm25".into()];
        with.topic_fields = BTreeMap::from([("site".into(), 2), ("device_id".into(), 4)]);
        let record = with
            .record(
                "plant/berlin/devices/aq-0001/telemetry",
                br#"{"ts": "2026-12-05T03:00:00Z", "pm25": 12.5, "battery": 3.7}"#,
            )
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&record).unwrap(),
            serde_json::json!({"ts": "2026-12-05T03:00:00Z", "pm25": 12.5, "site": "berlin", "device_id": "aq-0001"})
        );
        assert!(
            with.record("x", b"not json")
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(
            with.record("x", b"[1, 2]")
                .unwrap_err()
                .contains("not an object")
        );
        let mut zero = rule("a/b");
        zero.topic_fields = BTreeMap::from([("site".into(), 0)]);
        assert!(zero.check().is_err());
    }
}
