//! Bearer tokens: `kairos_<id>_<secret>`. The id is public (audit lines, `token
//! list`, revocation); the secret is 32 random bytes in hex, of which the group keeps
//! only the SHA-256.

/// The prefix every token starts with (so a leaked one is recognisable in a scan).
pub const TOKEN_PREFIX: &str = "kairos_";
const ID_BYTES: usize = 6;
const SECRET_BYTES: usize = 32;

/// A freshly made token: what is stored and what is shown once.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub secret_sha256: Vec<u8>,
    /// The whole token, to show to its creator and never again.
    pub token: String,
}

/// Makes a new random token.
pub fn mint() -> NewToken {
    use rand::RngCore as _;
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut id);
    rand::rng().fill_bytes(&mut secret);
    let id = hex(&id);
    let secret = hex(&secret);
    NewToken {
        secret_sha256: hash_secret(&secret),
        token: format!("{TOKEN_PREFIX}{id}_{secret}"),
        id,
    }
}

/// The (id, secret) of a well-formed token.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hexish = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexish(id, ID_BYTES * 2) && hexish(secret, SECRET_BYTES * 2)).then_some((id, secret))
}

/// The SHA-256 of a token's secret, as stored.
pub fn hash_secret(secret: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_parses_back_to_its_id_and_hashed_secret() {
        let t = mint();
        let (id, secret) = parse(&t.token).unwrap();
        assert_eq!(id, t.id);
        assert_eq!(hash_secret(secret), t.secret_sha256);
        assert_ne!(mint().token, t.token, "tokens are random");
        for bad in [
            "",
            "kairos_",
            "kairos_abc_def",
            &t.token.replacen("kairos_", "other_", 1),
            &format!("{}x", t.token),
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
