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

/// What a path field of a request holds, for an adapter that stages lake keys
/// (`lake:work/night-1/dataset`) around an operation: a file or a folder it reads, or a folder
/// it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRole {
    ReadsFile,
    ReadsFolder,
    WritesFolder,
}

/// A path field of a request: its name, what the operation does with it, and the path.
#[derive(Debug)]
pub struct PathField<'a> {
    pub name: &'static str,
    pub role: PathRole,
    pub path: &'a mut std::path::PathBuf,
}

/// The path fields of a request (none for most).
pub trait PathFields {
    fn path_fields(&mut self) -> Vec<PathField<'_>> {
        Vec::new()
    }
}

macro_rules! path_fields {
    ($request:ty { $($name:ident: $role:ident),* }) => {
        impl PathFields for $request {
            fn path_fields(&mut self) -> Vec<PathField<'_>> {
                let mut fields = Vec::new();
                $(path_fields!(@push fields, self.$name, stringify!($name), PathRole::$role);)*
                fields
            }
        }
    };
    (@push $fields:ident, $value:expr, $name:expr, $role:expr) => {
        for path in PathFieldValue::paths(&mut $value) {
            $fields.push(PathField { name: $name, role: $role, path });
        }
    };
}

/// A required or optional path.
trait PathFieldValue {
    fn paths(&mut self) -> Vec<&mut std::path::PathBuf>;
}

impl PathFieldValue for std::path::PathBuf {
    fn paths(&mut self) -> Vec<&mut std::path::PathBuf> {
        vec![self]
    }
}

impl PathFieldValue for Option<std::path::PathBuf> {
    fn paths(&mut self) -> Vec<&mut std::path::PathBuf> {
        self.iter_mut().collect()
    }
}

impl PathFieldValue for Vec<std::path::PathBuf> {
    fn paths(&mut self) -> Vec<&mut std::path::PathBuf> {
        self.iter_mut().collect()
    }
}

path_fields!(crate::DatasetRequest { out: WritesFolder });
path_fields!(crate::TrainRequest {
    train: ReadsFile,
    test: ReadsFile,
    model_dir: WritesFolder
});
path_fields!(crate::DriftRequest {
    train: ReadsFile,
    test: ReadsFile
});
path_fields!(crate::PublishRequest {
    test: ReadsFile,
    model_dir: ReadsFolder,
    candidates: ReadsFolder
});
path_fields!(crate::BatchForecastRequest { input: ReadsFile });
path_fields!(crate::BlendRequest {
    train: ReadsFile,
    candidates: ReadsFolder,
    model_dir: WritesFolder
});
