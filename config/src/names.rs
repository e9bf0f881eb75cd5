//! Names of servers and gateways as distinct types, so one is never passed for the other.
//! Both are `[a-z0-9-]{1,64}`: a server name can therefore never contain `__`, the separator
//! of `{server}__{tool}`, and a gateway name is always safe as the path segment of
//! `/mcp/{name}`.

use std::borrow::Borrow;
use std::fmt;

/// Longest server or gateway name, in bytes (names are ASCII).
pub const MAX_NAME_LEN: usize = 64;

/// Why a string is not a valid server or gateway name. Never quotes the name itself, which
/// may have come from the environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("a name must not be empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`].
    #[error("a name must be at most {MAX_NAME_LEN} characters long")]
    TooLong,
    /// The name contains a character outside `a-z`, `0-9` and `-`.
    #[error("a name may contain only a-z, 0-9 and '-', not {0:?}")]
    InvalidChar(char),
}

fn check(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        Some(c) => Err(NameError::InvalidChar(c)),
        None => Ok(()),
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            /// Validates and wraps a name.
            pub fn new(name: &str) -> Result<Self, NameError> {
                check(name).map(|()| $ty(name.to_owned()))
            }

            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Lets maps keyed by the name be looked up with a `&str`.
        impl Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $ty {
            type Err = NameError;

            fn from_str(name: &str) -> Result<Self, NameError> {
                $ty::new(name)
            }
        }
    };
}

name_type!(
    /// The name of an upstream MCP server; its tools are shown to clients as `{name}__{tool}`.
    ServerName
);
name_type!(
    /// The name of a gateway, served at `/mcp/{name}`.
    GatewayName
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercase_digits_and_dashes_are_the_only_valid_names() {
        assert!(ServerName::new("github-2").is_ok());
        assert_eq!(ServerName::new(""), Err(NameError::Empty));
        assert_eq!(ServerName::new("a__b"), Err(NameError::InvalidChar('_')));
        assert_eq!(GatewayName::new("Dev"), Err(NameError::InvalidChar('D')));
        assert_eq!(GatewayName::new("a/b"), Err(NameError::InvalidChar('/')));
        assert!(ServerName::new(&"a".repeat(MAX_NAME_LEN)).is_ok());
        assert_eq!(
            ServerName::new(&"a".repeat(MAX_NAME_LEN + 1)),
            Err(NameError::TooLong)
        );
    }

    #[test]
    fn names_look_up_maps_by_str() {
        let mut m = std::collections::HashMap::new();
        m.insert(ServerName::new("a").unwrap(), 1);
        assert_eq!(m.get("a"), Some(&1));
    }
}
