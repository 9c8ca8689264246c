//! `Secret`: a value read from the environment for a password or token. It prints as `****`
//! in `Debug` and `Display`, so it cannot reach a log, an error or an artifact by accident;
//! [`Secret::expose`] is the one deliberate way to read it, at the point of use.

use std::fmt;

/// A secret string; see the module docs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// Returns the secret itself, for handing to a driver or an HTTP header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the secret in `text` with `****`, for messages that come
    /// from drivers and servers and might echo it.
    pub fn redact(&self, text: &str) -> String {
        if self.0.len() < 3 {
            return text.to_string();
        }
        text.replace(&self.0, "****")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter22");
        assert_eq!(format!("{s} {s:?}"), "**** Secret(****)");
        assert_eq!(
            s.redact("password hunter22 rejected"),
            "password **** rejected"
        );
        assert_eq!(s.expose(), "hunter22");
    }
}
