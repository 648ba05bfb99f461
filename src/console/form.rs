//! What a console form or a page's query string sent: name–value pairs
//! as typed, kept whole so that a refused form shows them again.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Default)]
pub struct FormValues(Vec<(String, String)>);

impl FormValues {
    /// The pairs of `application/x-www-form-urlencoded` text (a form body
    /// or a query string).
    pub fn parse(text: &[u8]) -> FormValues {
        FormValues(
            form_urlencoded::parse(text)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        )
    }

    /// The value of `name` as typed; empty when it was not sent.
    pub fn raw(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(each, _)| each == name)
            .map_or("", |(_, value)| value.as_str())
    }

    /// The value of `name` with surrounding whitespace trimmed, if it
    /// says anything: an empty field is a field left out.
    pub fn get(&self, name: &str) -> Option<&str> {
        Some(self.raw(name).trim()).filter(|value| !value.is_empty())
    }

    /// The fields named in `names` that say something, as a JSON object
    /// for the API (which validates them, as it does for every client).
    pub fn json(&self, names: &[&str]) -> Value {
        let mut object = Map::new();
        for name in names {
            if let Some(value) = self.get(name) {
                object.insert((*name).to_owned(), Value::String(value.to_owned()));
            }
        }
        Value::Object(object)
    }

    /// The fields named in `names` that say something, as a query string
    /// (empty, or starting with `?`).
    pub fn query(&self, names: &[&str]) -> String {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for name in names {
            if let Some(value) = self.get(name) {
                serializer.append_pair(name, value);
            }
        }
        let query = serializer.finish();
        if query.is_empty() {
            query
        } else {
            format!("?{query}")
        }
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// `pairs` as a query string, without the `?`.
pub fn encode(pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fields_are_left_out_and_values_are_trimmed() {
        let values = FormValues::parse(b"amount=+12.50+&valueDate=&reason=a%26b&status=PAID");
        assert_eq!(values.raw("amount"), " 12.50 ");
        assert_eq!(values.get("amount"), Some("12.50"));
        assert_eq!(values.get("valueDate"), None);
        assert_eq!(
            values.json(&["amount", "valueDate", "reason"]),
            serde_json::json!({"amount": "12.50", "reason": "a&b"})
        );
        assert_eq!(values.query(&["status", "bucket"]), "?status=PAID");
        assert_eq!(values.query(&["bucket"]), "");
    }
}
