//! Gateway authentication for Sluice: who may call a gateway, and which of its tools.
//!
//! A gateway with `[gateways.auth]` accepts static bearer tokens (held as SHA-256 digests),
//! JWTs of external identity providers checked against their cached key sets ([`keys`]), and
//! access tokens Sluice's own [`issuer`] grants for ID-JAG assertions. The [`Authenticator`]
//! turns a bearer token into an [`Identity`] (cached by token digest, so a warm request costs a
//! hash and a lookup), and the gateway's [`rules`] decide which tools that identity may see
//! and call. The crate knows nothing of HTTP serving: the proxy maps [`AuthError`] to 401/403
//! and serves the documents.
#![warn(missing_docs)]

mod authenticator;
pub mod credential;
pub mod error;
pub mod fetch;
pub mod identity;
pub mod issuer;
pub mod jwk;
pub mod jwt;
pub mod keys;
pub mod policy;
pub mod rules;

pub use authenticator::{Authenticator, Provider, SetupError, TOKEN_CACHE_CAPACITY, bearer};
pub use credential::{CredentialError, UpstreamCredential};
pub use error::AuthError;
pub use identity::{Identity, Source};
pub use issuer::{Issuer, OAuthError};
pub use policy::GatewayPolicy;
pub use rules::{Decision, Grants, Rules, claim_holds, glob_match};

#[cfg(test)]
mod tests;
