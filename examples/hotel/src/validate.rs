//! DRF-style validation of hotel input: `{"<field>": ["<message>", …]}` bodies.

use std::collections::BTreeMap;

use rocket::serde::json::Value;

/// Longest accepted name, location or description, in characters.
pub const MAX_CHARS: usize = 255;

pub const REQUIRED: &str = "This field is required.";
pub const BLANK: &str = "This field may not be blank.";
pub const NULL: &str = "This field may not be null.";
pub const NOT_A_STRING: &str = "Not a valid string.";
pub const TOO_LONG: &str = "Ensure this field has no more than 255 characters.";
pub const NOT_A_FILE: &str =
    "The submitted data was not a file. Check the encoding type on the form.";

/// Field name → messages, serialized as the 400 body.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// The text fields of a hotel, in body order.
pub const TEXT_FIELDS: [&str; 3] = ["name", "location", "description"];

/// Create and PUT need every field; PATCH any subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    Partial,
}

/// Validated text fields; `None` means "not given" (only possible in partial mode).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text {
    pub name: Option<String>,
    pub location: Option<String>,
    pub description: Option<String>,
}

impl Text {
    fn slot(&mut self, field: &str) -> Option<&mut Option<String>> {
        match field {
            "name" => Some(&mut self.name),
            "location" => Some(&mut self.location),
            "description" => Some(&mut self.description),
            _ => None,
        }
    }
}

/// One submitted text value, before checks.
#[derive(Debug, Clone, Copy)]
pub enum Raw<'a> {
    Missing,
    Null,
    Str(&'a str),
    /// A JSON number, accepted as its text (as DRF's CharField does).
    Number(&'a serde_json::Number),
    /// A boolean, array or object.
    Other,
}

/// Checks one value; `Ok(None)` when it is absent and may be.
pub fn check(raw: Raw<'_>, mode: Mode) -> Result<Option<String>, &'static str> {
    let text = match raw {
        Raw::Missing if mode == Mode::Partial => return Ok(None),
        Raw::Missing => return Err(REQUIRED),
        Raw::Null => return Err(NULL),
        Raw::Other => return Err(NOT_A_STRING),
        Raw::Number(n) => n.to_string(),
        Raw::Str(s) => s.trim().to_owned(),
    };
    if text.is_empty() {
        Err(BLANK)
    } else if text.chars().count() > MAX_CHARS {
        Err(TOO_LONG)
    } else {
        Ok(Some(text))
    }
}

/// Checks the three text fields, getting each raw value from `get`.
pub fn text_fields<'a>(
    mode: Mode,
    errors: &mut FieldErrors,
    mut get: impl FnMut(&str) -> Raw<'a>,
) -> Text {
    let mut text = Text::default();
    for field in TEXT_FIELDS {
        match check(get(field), mode) {
            Ok(value) => {
                if let Some(slot) = text.slot(field) {
                    *slot = value;
                }
            }
            Err(message) => {
                errors.insert(field.to_owned(), vec![message.to_owned()]);
            }
        }
    }
    text
}

/// A JSON value as a [`Raw`].
pub fn raw_json(value: Option<&Value>) -> Raw<'_> {
    match value {
        None => Raw::Missing,
        Some(Value::Null) => Raw::Null,
        Some(Value::String(s)) => Raw::Str(s),
        Some(Value::Number(n)) => Raw::Number(n),
        Some(_) => Raw::Other,
    }
}

/// The error body for a JSON document that is not an object.
pub fn not_an_object(value: &Value) -> FieldErrors {
    let kind = match value {
        Value::Array(_) => "list",
        Value::String(_) => "str",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::Bool(_) => "bool",
        Value::Null => "NoneType",
        Value::Object(_) => "dict",
    };
    let mut errors = FieldErrors::new();
    errors.insert(
        "non_field_errors".into(),
        vec![format!(
            "Invalid data. Expected a dictionary, but got {kind}."
        )],
    );
    errors
}

/// Constant-time comparison of a presented secret with the expected one.
pub fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    let mut diff = presented.len() ^ expected.len();
    for i in 0..presented.len().max(expected.len()) {
        let a = presented.get(i).copied().unwrap_or(0);
        let b = expected.get(i).copied().unwrap_or(0);
        diff |= usize::from(a ^ b);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::serde::json::serde_json::json;

    #[test]
    fn single_values() {
        assert_eq!(
            check(Raw::Str("  Ritz "), Mode::Full),
            Ok(Some("Ritz".into()))
        );
        assert_eq!(check(Raw::Missing, Mode::Full), Err(REQUIRED));
        assert_eq!(check(Raw::Missing, Mode::Partial), Ok(None));
        assert_eq!(check(Raw::Null, Mode::Partial), Err(NULL));
        assert_eq!(check(Raw::Str("   "), Mode::Full), Err(BLANK));
        assert_eq!(check(Raw::Other, Mode::Full), Err(NOT_A_STRING));
        let n = serde_json::Number::from(42);
        assert_eq!(check(Raw::Number(&n), Mode::Full), Ok(Some("42".into())));
        assert_eq!(
            check(Raw::Str(&"é".repeat(255)), Mode::Full).map(|_| ()),
            Ok(())
        );
        assert_eq!(check(Raw::Str(&"é".repeat(256)), Mode::Full), Err(TOO_LONG));
    }

    #[test]
    fn whole_bodies() {
        let body = json!({"name": "", "location": "Paris"});
        let mut errors = FieldErrors::new();
        let text = text_fields(Mode::Full, &mut errors, |f| raw_json(body.get(f)));
        assert_eq!(text.location.as_deref(), Some("Paris"));
        assert_eq!(
            rocket::serde::json::to_value(&errors).unwrap(),
            json!({"name": [BLANK], "description": [REQUIRED]})
        );

        let mut errors = FieldErrors::new();
        let text = text_fields(Mode::Partial, &mut errors, |f| raw_json(body.get(f)));
        assert_eq!(errors.len(), 1);
        assert_eq!(text.description, None);
    }

    #[test]
    fn non_objects() {
        assert_eq!(
            not_an_object(&json!([1]))["non_field_errors"][0],
            "Invalid data. Expected a dictionary, but got list."
        );
    }

    #[test]
    fn secrets() {
        assert!(same_secret(b"token", b"token"));
        assert!(!same_secret(b"token", b"tokem"));
        assert!(!same_secret(b"tok", b"token"));
        assert!(!same_secret(b"", b"token"));
        assert!(!same_secret(b"token!", b"token"));
    }
}
