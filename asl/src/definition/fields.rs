//! Reading a definition's object fields with the JSON pointer of each, for validation errors.

use serde_json::{Map, Value};

use super::{PathField, ValidationError};

pub(super) struct Fields<'a> {
    pub(super) map: &'a Map<String, Value>,
    pub(super) pointer: &'a str,
}

impl Fields<'_> {
    pub(super) fn error(&self, field: &str, message: impl Into<String>) -> ValidationError {
        let pointer = if field.is_empty() {
            self.pointer.to_owned()
        } else {
            format!("{}/{field}", self.pointer)
        };
        ValidationError {
            pointer,
            message: message.into(),
        }
    }

    pub(super) fn string(&self, field: &str) -> Result<Option<String>, ValidationError> {
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.error(field, "must be a string")),
        }
    }

    pub(super) fn number(&self, field: &str) -> Result<Option<f64>, ValidationError> {
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f >= 0.0) => Ok(n.as_f64()),
            Some(_) => Err(self.error(field, "must be a non-negative number")),
        }
    }

    pub(super) fn path(&self, field: &str) -> Result<PathField, ValidationError> {
        match self.map.get(field) {
            None => Ok(PathField::Default),
            Some(Value::Null) => Ok(PathField::Null),
            Some(Value::String(s)) if s.starts_with('$') => Ok(PathField::Path(s.clone())),
            Some(_) => Err(self.error(field, "must be null or a path starting with '$'")),
        }
    }

    pub(super) fn only(&self, allowed: &[&str]) -> Result<(), ValidationError> {
        for key in self.map.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(self.error(key, "is not a field of this state type"));
            }
        }
        Ok(())
    }
}
