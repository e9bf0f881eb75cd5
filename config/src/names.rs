//! Newtypes for values that must not be confused: server and gateway names (validated
//! `[a-z0-9-]+`, so a server name can never contain the `__` tool-prefix separator) and
//! secrets, whose `Debug` and `Display` never print the value.

use std::fmt;

/// Longest server or gateway name.
pub const MAX_NAME_LEN: usize = 64;

/// Why a name was refused.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("name must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!("name longer than {MAX_NAME_LEN} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!(
            "name {name:?} contains {c:?}; names use only a-z, 0-9 and '-'"
        ));
    }
    None
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            /// Validates and wraps a name.
            pub fn new(name: &str) -> Result<Self, String> {
                match name_problem(name) {
                    Some(problem) => Err(problem),
                    None => Ok($ty(name.to_owned())),
                }
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
    };
}

name_type!(
    /// The name of an upstream MCP server; its tools appear as `{name}__{tool}`.
    ServerName
);
name_type!(
    /// The name of a gateway, served at `/mcp/{name}`.
    GatewayName
);

/// A secret value. Printing it shows `***`; read it with [`SecretString::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(secret: String) -> Self {
        SecretString(secret)
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
