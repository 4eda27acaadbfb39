//! The config file (`--config`): TOML whose top-level keys are the keys of the table, read into
//! one layer of [`Settings`]. Unknown keys are refused with the nearest known one.

use std::path::Path;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{keys, ConfigError, Settings};

/// Parses the text of a config file (named `path` in errors) into one layer of settings.
pub fn settings_from_toml(path: &Path, text: &str) -> Result<Settings, ConfigError> {
    toml::from_str(text).map_err(|err| {
        // serde's unknown_field message: "unknown field `name`, ...".
        let unknown = err
            .message()
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(key, _)| key.to_owned());
        match unknown {
            Some(key) => ConfigError::UnknownKey {
                path: path.to_owned(),
                suggestion: closest_key(&key),
                line: err.span().map(|span| line_of(text, span.start)),
                key,
            },
            None => ConfigError::Syntax {
                path: path.to_owned(),
                message: err.to_string(),
            },
        }
    })
}

impl<'de> Deserialize<'de> for Settings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = Settings;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table of settings")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Settings, A::Error> {
                let mut settings = Settings::default();
                while let Some(Row(row)) = map.next_key()? {
                    settings.values.insert(row, map.next_value()?);
                }
                Ok(settings)
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

/// A key of the file, as its row in [`keys`]. Refused while the key itself is read, so that the
/// error points at the key's line.
struct Row(usize);

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        keys()
            .iter()
            .position(|key| key.name == name)
            .map(Row)
            .ok_or_else(|| de::Error::unknown_field(&name, &[]))
    }
}

/// The 1-based line of byte `offset` in `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The known key nearest to a misspelt one, if it is close enough to be a typo.
pub(super) fn closest_key(key: &str) -> Option<&'static str> {
    let wanted = key.to_ascii_lowercase().replace('-', "_");
    keys()
        .iter()
        .map(|known| (edit_distance(&wanted, known.name), known.name))
        .filter(|&(distance, _)| distance <= 3)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance, for short keys only.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}
