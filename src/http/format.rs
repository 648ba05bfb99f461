//! Wire formats shared by every view.

/// Timestamps go out as RFC 3339 UTC with whole seconds:
/// `2026-11-24T15:04:05Z`.
pub mod timestamp {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(
        moment: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&moment.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            moment: &Option<DateTime<Utc>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match moment {
                Some(moment) => super::serialize(moment, serializer),
                None => serializer.serialize_none(),
            }
        }
    }
}
