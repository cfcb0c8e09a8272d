//! [`Region`]: where the programme's data is stored, decided by the printer's country or region.

use serde::{Deserialize, Serialize};

/// The storage region a bundle is routed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// Mainland China: stored in China.
    Cn,
    /// Everywhere else: stored in the United States.
    Us,
}

/// A country code that is not a two-letter ISO 3166-1 alpha-2 code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an ISO 3166-1 alpha-2 country or region code")]
pub struct RegionError(pub String);

impl Region {
    /// Routes by ISO 3166-1 alpha-2 code (case-insensitive, surrounding spaces ignored).
    ///
    /// Only `CN` (mainland China) goes to [`Region::Cn`]. Hong Kong (`HK`), Macau (`MO`) and Taiwan (`TW`)
    /// have their own codes and data-protection regimes and are not "mainland China" under the programme's
    /// rules, so they go to [`Region::Us`] with every other code. An empty or malformed code is an error,
    /// never a guess: the caller must not hand anything on without a region.
    pub fn from_country(code: &str) -> Result<Region, RegionError> {
        let c = code.trim();
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(RegionError(code.to_string()));
        }
        Ok(if c.eq_ignore_ascii_case("CN") { Region::Cn } else { Region::Us })
    }

    /// The short name used in bundles and the audit log: `"cn"` or `"us"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Cn => "cn",
            Region::Us => "us",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mainland_china_routes_to_cn() {
        assert_eq!(Region::from_country("CN"), Ok(Region::Cn));
        assert_eq!(Region::from_country(" cn "), Ok(Region::Cn));
        for c in ["HK", "MO", "TW", "US", "DE", "JP", "br"] {
            assert_eq!(Region::from_country(c), Ok(Region::Us), "{c}");
        }
    }

    #[test]
    fn an_unknown_code_is_an_error_not_a_guess() {
        for c in ["", "C", "CHN", "C1", "中国"] {
            assert!(Region::from_country(c).is_err(), "{c}");
        }
    }
}
