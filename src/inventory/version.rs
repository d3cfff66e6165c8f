//! Exadata image versions (`25.1.4.0.0.250614`): dotted numbers compared field by field.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An image version such as `24.1.14.0.0.250706`. Fields are compared numerically,
/// left to right; a missing field counts as 0. `default` (seen in es.xml) is not a version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageVersion {
    text: String,
    fields: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an image version (expected dotted numbers such as 25.1.4.0.0.250614)")]
pub struct BadVersion(pub String);

impl FromStr for ImageVersion {
    type Err = BadVersion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.is_empty() {
            return Err(BadVersion(s.to_string()));
        }
        let fields = text
            .split('.')
            .map(|f| f.parse::<u64>().map_err(|_| BadVersion(s.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ImageVersion {
            text: text.to_string(),
            fields,
        })
    }
}

impl ImageVersion {
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Ord for ImageVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.fields.len().max(other.fields.len());
        for i in 0..n {
            let a = self.fields.get(i).copied().unwrap_or(0);
            let b = other.fields.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for ImageVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ImageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for ImageVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for ImageVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_numerically_not_lexically() {
        let a: ImageVersion = "24.1.9.0.0.250101".parse().unwrap();
        let b: ImageVersion = "24.1.14.0.0.240101".parse().unwrap();
        assert!(a < b);
        let c: ImageVersion = "25.1".parse().unwrap();
        assert!(c > b);
        assert_eq!(
            "25.1".parse::<ImageVersion>().unwrap(),
            "25.1".parse().unwrap()
        );
        assert_eq!(
            "25.1.0".parse::<ImageVersion>().unwrap().cmp(&c),
            Ordering::Equal
        );
    }

    #[test]
    fn rejects_non_versions() {
        assert!("default".parse::<ImageVersion>().is_err());
        assert!("".parse::<ImageVersion>().is_err());
        assert!("25..1".parse::<ImageVersion>().is_err());
    }
}
