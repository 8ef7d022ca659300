//! What a webhook carries: sluice's event document, or a Slack incoming-webhook body. Pure: the
//! body is rendered once, when the delivery is queued, and sent as stored.

use serde_json::{Value, json};

use super::BodyFormat;
use crate::events::Event;
use crate::workflows::store::show_time;

/// The webhook body of `event` for rule `rule`.
pub fn body(rule: &str, event: &Event, format: BodyFormat) -> Value {
    match format {
        BodyFormat::Json => json!({
            "version": 1,
            "rule": rule,
            "event": event.key,
            "kind": event.kind,
            "at": show_time(event.at),
            "subject": event.subject,
            "summary": event.summary,
            "detail": event.detail,
        }),
        BodyFormat::Slack => {
            let text = format!("sluice {}: {}", event.kind, event.summary);
            json!({
                "text": text,
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": format!(
                        "*{}* · `{}`\n{}", event.kind, escape(&event.subject), escape(&event.summary)
                    )}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
                        "rule `{}` · {} · {}", escape(rule), escape(&event.key), show_time(event.at)
                    )}]},
                ],
            })
        }
    }
}

/// Slack's mrkdwn escapes: `&`, `<` and `>` (the rest is taken as written).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    fn failed() -> Event {
        Event {
            kind: EventKind::ExecutionFailed,
            key: "execution/abc/0".into(),
            at: 1_714_528_800_000,
            subject: "nightly-retrain".into(),
            summary: "execution night-2 of nightly-retrain failed in state Train: Sluice.TrainingFailed: loss <nan> & worse".into(),
            detail: json!({"execution": "abc"}),
        }
    }

    #[test]
    fn the_json_body_is_pinned() {
        assert_eq!(
            body("on-call", &failed(), BodyFormat::Json),
            json!({"version": 1, "rule": "on-call", "event": "execution/abc/0",
                "kind": "execution.failed", "at": "2024-05-01T02:00:00.000Z",
                "subject": "nightly-retrain", "summary": failed().summary,
                "detail": {"execution": "abc"}})
        );
    }

    #[test]
    fn the_slack_body_has_text_and_escaped_blocks() {
        let slack = body("on-call", &failed(), BodyFormat::Slack);
        assert!(
            slack["text"]
                .as_str()
                .unwrap()
                .starts_with("sluice execution.failed: execution night-2")
        );
        let section = slack["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            section.contains("loss &lt;nan&gt; &amp; worse"),
            "{section}"
        );
        assert_eq!(slack["blocks"][1]["type"], "context");
    }
}
