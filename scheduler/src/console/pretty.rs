//! JSON values as the console shows them: pretty-printed, and folded behind a summary when
//! they are large (a `<details>` element: open it to read, no script needed).

use serde_json::Value;

/// Past this many characters a value is folded.
const FOLD_AT: usize = 600;
/// A summary's length.
const SUMMARY: usize = 100;

/// A JSON value ready for a template (askama escapes the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub text: String,
    /// Set for large values: what the folded value's summary says.
    pub folded: Option<String>,
}

/// Shows a value.
pub fn show(value: &Value) -> Shown {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    let folded = (text.len() > FOLD_AT).then(|| {
        let compact = value.to_string();
        let head: String = compact.chars().take(SUMMARY).collect();
        format!("{head}… ({})", size(text.len()))
    });
    Shown { text, folded }
}

impl Shown {
    /// The value as HTML: a `<pre>`, inside a `<details>` with its summary when folded.
    pub fn html(&self) -> String {
        let pre = format!("<pre class=\"json\">{}</pre>", escape(&self.text));
        match &self.folded {
            Some(summary) => format!(
                "<details><summary>{}</summary>{pre}</details>",
                escape(summary)
            ),
            None => pre,
        }
    }
}

/// Text escaped for HTML, in content and in quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024. * 1024.))
    } else if bytes >= 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn small_values_are_shown_and_large_ones_folded() {
        let small = show(&json!({"a": 1}));
        assert_eq!(small.text, "{\n  \"a\": 1\n}");
        assert_eq!(small.folded, None);
        let large = show(&json!({"rows": (0..200).collect::<Vec<_>>()}));
        let summary = large.folded.clone().expect("folded");
        assert!(summary.starts_with("{\"rows\":[0,1,2,"), "{summary}");
        assert!(summary.ends_with("KiB)"), "{summary}");
        assert!(large.text.contains("199"));
        assert!(
            large
                .html()
                .starts_with("<details><summary>{&quot;rows&quot;")
        );
        assert_eq!(
            show(&json!("<b>")).html(),
            "<pre class=\"json\">&quot;&lt;b&gt;&quot;</pre>"
        );
    }
}
