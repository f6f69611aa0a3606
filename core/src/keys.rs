//! API keys: who may write and read as which client. A key is a token
//! `ik_<id>_<secret>`: the id (16 hex digits) names its row in the store,
//! and the secret (64 hex digits, 256 random bits) is kept only as its
//! SHA-256 and compared in constant time. A client key writes and reads as
//! its one client; an admin key reads every client and drives the failure
//! switch. Keys live in the store, so every process and host over one
//! database knows the same keys.

use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::identity::identity;
use crate::limits::shorten;
use crate::timestamp::Timestamp;

const PREFIX: &str = "ik_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// What a key may do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeyScope {
    /// Write and read as this client only (its name in the one form of
    /// names, as events store it).
    Client {
        /// The client.
        client_id: String,
    },
    /// Read every client, drive the failure switch, read the metrics.
    Admin {
        /// A name for people (who holds the key).
        name: String,
    },
}

impl KeyScope {
    /// A client key's scope, its name put in the one form of names; an
    /// empty name is an `InvalidArgument`.
    pub fn client(client_id: &str) -> Result<Self> {
        let client_id = identity(client_id).into_owned();
        if client_id.is_empty() {
            return Err(Error::arg("a client key needs a client id that is not empty"));
        }
        Ok(KeyScope::Client { client_id })
    }

    /// An admin key's scope; an empty name is an `InvalidArgument`.
    pub fn admin(name: &str) -> Result<Self> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::arg("an admin key needs a name that is not empty"));
        }
        Ok(KeyScope::Admin { name: name.to_string() })
    }

    /// The scope a caller names with two optional arguments (the bindings'
    /// and the command line's): a client, or an admin key's name, exactly
    /// one of them.
    pub fn named(client_id: Option<&str>, admin: Option<&str>) -> Result<Self> {
        match (client_id, admin) {
            (Some(c), None) => KeyScope::client(c),
            (None, Some(name)) => KeyScope::admin(name),
            _ => Err(Error::arg(
                "a key is for one client (give its client id) or an admin key (give admin=NAME), not both or neither",
            )),
        }
    }

    /// The client a client key is for; `None` for an admin key.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            KeyScope::Client { client_id } => Some(client_id),
            KeyScope::Admin { .. } => None,
        }
    }
}

/// A key just made: the token is shown once and never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewKey {
    /// The key's id, to list and revoke it.
    pub id: String,
    /// The bearer token to give its holder.
    pub token: String,
    /// What it may do.
    pub scope: KeyScope,
}

/// A stored key, as listed (without anything of its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// The key's id.
    pub id: String,
    /// What it may do.
    pub scope: KeyScope,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it was revoked; `None` while it is valid.
    pub revoked_at: Option<Timestamp>,
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The key's id.
    pub key_id: String,
    /// What it may do.
    pub scope: KeyScope,
}

/// A new key's id, token and secret digest, from fresh random bytes.
pub(crate) fn generate() -> Result<(String, String, [u8; 32])> {
    let mut bytes = [0u8; ID_BYTES + SECRET_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::storage(crate::StorageKind::Io, format!("no random bytes for a key: {e}")))?;
    let id = hex(&bytes[..ID_BYTES]);
    let secret = hex(&bytes[ID_BYTES..]);
    let token = format!("{PREFIX}{id}_{secret}");
    Ok((id, token, digest(&secret)))
}

/// The id and secret of a token of the right shape; `None` for anything
/// else (never an error: a wrong token is just not a key).
pub(crate) fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.trim().strip_prefix(PREFIX)?.split_once('_')?;
    let hexits = |s: &str, n: usize| s.len() == 2 * n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexits(id, ID_BYTES) && hexits(secret, SECRET_BYTES)).then_some((id, secret))
}

/// Whether `secret` is the one whose digest is `stored`, in time that does
/// not depend on where they differ.
pub(crate) fn matches(secret: &str, stored: &[u8]) -> bool {
    bool::from(digest(secret).as_slice().ct_eq(stored))
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.to_ascii_lowercase().as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A key id given by a person (to revoke): checked, lower case.
pub(crate) fn check_id(id: &str) -> Result<String> {
    let id = id.trim();
    if id.len() == 2 * ID_BYTES && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(Error::arg(format!(
            "{:?} is not a key id (16 hex digits, as list-keys shows them)",
            shorten(id, 40)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_parses_back_and_only_its_secret_matches() {
        let (id, token, stored) = generate().unwrap();
        let (pid, secret) = parse(&token).unwrap();
        assert_eq!(pid, id);
        assert!(matches(secret, &stored));
        let mut other = secret.to_string();
        other.replace_range(..1, if other.starts_with('0') { "1" } else { "0" });
        assert!(!matches(&other, &stored));
        assert!(!matches(secret, &stored[..31]), "a cut digest never matches");
        let (_, token2, _) = generate().unwrap();
        assert_ne!(token, token2, "fresh random bytes each time");
    }

    #[test]
    fn anything_else_is_not_a_token() {
        let (_, token, _) = generate().unwrap();
        for bad in [
            "",
            "ik_",
            "Bearer x",
            &token[3..],
            &token[..token.len() - 1],
            &format!("{token}0"),
            &token.replace('_', "-"),
            "ik_zzzzzzzzzzzzzzzz_0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn scopes_check_their_names() {
        assert_eq!(
            KeyScope::client(" acme ").unwrap().client_id(),
            Some("acme"),
            "the one form of names"
        );
        assert!(KeyScope::client("  ").is_err());
        assert!(KeyScope::admin("").is_err());
        assert_eq!(check_id(" 0123456789ABCDEF ").unwrap(), "0123456789abcdef");
        assert!(check_id("nope").is_err());
        assert_eq!(
            KeyScope::named(None, Some("ops")).unwrap(),
            KeyScope::admin("ops").unwrap()
        );
        assert!(KeyScope::named(Some("a"), Some("ops")).is_err());
        assert!(KeyScope::named(None, None).is_err());
    }
}
