//! Requests from JSON (a Task state's input, an HTTP body): one function for every adapter, so
//! a wrong type or an unknown field is refused with the field's path, never read as a default.
//! Also the small shapes requests share.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::Error;

/// A request of type `T` from JSON, or [`Error::InvalidInput`] naming the field.
pub fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner().to_string();
        // A missing field is reported at its parent: name the field itself.
        let missing = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (missing, path.as_str()) {
            (Some(name), ".") => name.to_owned(),
            (Some(name), parent) => format!("{parent}.{name}"),
            (None, ".") => "input".to_owned(),
            (None, _) => path.clone(),
        };
        match missing {
            Some(_) => Error::invalid(field, "is required"),
            None => Error::invalid(field, inner),
        }
    })
}

/// One string or a list of strings (`"item": "device_id"` or `"item": ["site", "device_id"]`);
/// null is none.
pub(crate) fn one_or_many<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        None(()),
        One(String),
        Many(Vec<String>),
    }
    let parsed = OneOrMany::deserialize(de)
        .map_err(|_| serde::de::Error::custom("expected a string or a list of strings"))?;
    Ok(match parsed {
        OneOrMany::None(()) => vec![],
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// A calendar date, `YYYY-MM-DD`.
pub(crate) fn date(field: &str, text: &str) -> Result<chrono::NaiveDate, String> {
    text.parse()
        .map_err(|_| format!("{field} must be a date (YYYY-MM-DD): {text:?}"))
}
