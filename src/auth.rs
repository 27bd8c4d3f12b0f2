//! Credentials: argon2id password hashes, stream keys, and the HS256 JWTs of the API.

use std::path::Path;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Shortest password accepted for an account.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted: argon2 hashes anything, but a bound keeps request cost fixed.
pub const MAX_PASSWORD_LEN: usize = 256;
/// Stream keys carry 160 random bits (the spec asks for at least 128).
const STREAM_KEY_BYTES: usize = 20;
/// Lifetime of an API access token.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(8 * 24 * 3600);

/// Hashes a password with argon2id (the crate's defaults: 19 MiB, 2 passes), PHC format.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt_bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Checks a password against a stored PHC hash; a malformed hash never verifies.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
        .unwrap_or(false)
}

/// Checks a new password's length, with a message fit for the user.
pub fn validate_password(password: &str) -> Result<(), String> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(format!("password must be at least {MIN_PASSWORD_LEN} characters"));
    }
    if len > MAX_PASSWORD_LEN {
        return Err(format!("password must be at most {MAX_PASSWORD_LEN} characters"));
    }
    Ok(())
}

/// A fresh random stream key: lower-case hex, so it always matches [`is_well_formed_key`].
pub fn generate_stream_key() -> String {
    random_hex(STREAM_KEY_BYTES)
}

/// `n` random bytes from the OS-seeded CSPRNG, as lower-case hex: session, CSRF and reset
/// tokens.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

/// SHA-256 of a bearer token, hex: what the database keeps instead of the token itself.
pub fn token_digest(token: &str) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The spec's key syntax: `^[A-Za-z0-9_-]{1,128}$`.
pub fn is_well_formed_key(key: &str) -> bool {
    (1..=128).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a DJ name as typed and returns the form to store: its NFKC normalisation, so
/// that fullwidth or other compatibility forms become the plain letters they show as.
pub fn normalize_dj_name(name: &str) -> Result<String, String> {
    use unicode_normalization::UnicodeNormalization;
    let name: String = name.nfkc().collect();
    validate_dj_name(&name)?;
    Ok(name)
}

/// Validates a DJ name: shown on overlays, so printable, trimmed and short. Format
/// characters (zero-width spaces and joiners, bidi overrides and isolates) are refused:
/// invisible, they let a name read as someone else's.
pub fn validate_dj_name(name: &str) -> Result<(), String> {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    let len = name.chars().count();
    if !(1..=40).contains(&len) {
        return Err("dj_name must be 1 to 40 characters".into());
    }
    if name.trim() != name {
        return Err("dj_name must not start or end with spaces".into());
    }
    if name.chars().any(|c| c.is_control() || matches!(c, '<' | '>' | '"' | '/' | '\\')) {
        return Err("dj_name must not contain control characters or < > \" / \\".into());
    }
    if name.chars().any(|c| c.general_category() == GeneralCategory::Format) {
        return Err("dj_name must not contain invisible or text-direction characters".into());
    }
    Ok(())
}

/// A deliberately simple email check: the mail server is the real judge.
pub fn validate_email(email: &str) -> Result<(), String> {
    let ok = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        });
    if ok { Ok(()) } else { Err("email is not a valid address".into()) }
}

/// Claims of an API access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a string (JWT convention).
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    /// The account's token version at issue time: a token whose version is no longer the
    /// account's was revoked. Tokens issued before versions existed lack it and are refused.
    pub ver: i64,
}

/// Who a valid token speaks for, and with which token version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSubject {
    pub user_id: i64,
    pub version: i64,
}

/// Signs and verifies access tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    pub fn from_secret(secret: &[u8]) -> Self {
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret) }
    }

    /// Uses `JWT_SECRET` if given, else the secret stored in the data dir, creating it
    /// (256 random bits, file mode 0600) on first run. There is no built-in default.
    pub fn load_or_create(env_secret: Option<&str>, data_dir: &Path) -> Result<Self, String> {
        if let Some(secret) = env_secret {
            if secret.len() < 16 {
                return Err("JWT_SECRET: must be at least 16 characters".into());
            }
            return Ok(Self::from_secret(secret.as_bytes()));
        }
        let path = data_dir.join("jwt_secret");
        match std::fs::read_to_string(&path) {
            Ok(s) if s.trim().len() >= 32 => return Ok(Self::from_secret(s.trim().as_bytes())),
            Ok(_) => {
                return Err(format!("JWT_SECRET: {} is too short; delete it to regenerate", path.display()));
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("JWT_SECRET: cannot read {}: {e}", path.display()));
            }
            Err(_) => {}
        }
        let secret = random_hex(32);
        write_private(&path, secret.as_bytes())
            .map_err(|e| format!("JWT_SECRET: cannot write {}: {e}", path.display()))?;
        Ok(Self::from_secret(secret.as_bytes()))
    }

    /// Issues a token for a user at their current token version, valid for
    /// [`TOKEN_LIFETIME`] or until the version changes.
    pub fn issue(&self, subject: TokenSubject, now_unix: u64) -> Result<String, String> {
        let claims = Claims {
            sub: subject.user_id.to_string(),
            iat: now_unix,
            exp: now_unix + TOKEN_LIFETIME.as_secs(),
            ver: subject.version,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| e.to_string())
    }

    /// The subject of a valid, unexpired HS256 token; the caller compares its version with
    /// the account's.
    pub fn verify(&self, token: &str) -> Option<TokenSubject> {
        let validation = Validation::new(Algorithm::HS256);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).ok()?;
        Some(TokenSubject { user_id: data.claims.sub.parse().ok()?, version: data.claims.ver })
    }
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hashes_are_argon2id_and_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn stream_keys_are_long_random_and_well_formed() {
        let a = generate_stream_key();
        let b = generate_stream_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), 40);
        assert!(is_well_formed_key(&a));
    }

    #[test]
    fn key_syntax_follows_the_spec() {
        assert!(is_well_formed_key("abc_DEF-123"));
        assert!(is_well_formed_key(&"a".repeat(128)));
        assert!(!is_well_formed_key(""));
        assert!(!is_well_formed_key(&"a".repeat(129)));
        assert!(!is_well_formed_key("a b"));
        assert!(!is_well_formed_key("key?x=1"));
        assert!(!is_well_formed_key("ké"));
    }

    #[test]
    fn tokens_round_trip_and_reject_tampering_and_expiry() {
        let keys = TokenKeys::from_secret(b"0123456789abcdef0123456789abcdef");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let subject = TokenSubject { user_id: 42, version: 3 };
        let token = keys.issue(subject, now).unwrap();
        assert_eq!(keys.verify(&token), Some(subject));
        let other = TokenKeys::from_secret(b"another secret, another signer!!");
        assert_eq!(other.verify(&token), None);
        let expired = keys.issue(subject, now - TOKEN_LIFETIME.as_secs() - 3600).unwrap();
        assert_eq!(keys.verify(&expired), None);
        assert_eq!(keys.verify("garbage"), None);
    }

    #[test]
    fn secret_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = TokenKeys::load_or_create(None, dir.path()).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let subject = TokenSubject { user_id: 1, version: 0 };
        let token = a.issue(subject, now).unwrap();
        let b = TokenKeys::load_or_create(None, dir.path()).unwrap();
        assert_eq!(b.verify(&token), Some(subject));
        assert!(TokenKeys::load_or_create(Some("short"), dir.path()).is_err());
    }

    #[test]
    fn names_and_emails_are_validated() {
        assert!(validate_dj_name("DJ Shadow").is_ok());
        assert!(validate_dj_name(" x").is_err());
        assert!(validate_dj_name("<script>").is_err());
        assert!(validate_dj_name("").is_err());
        for invisible in ["a\u{200B}b", "a\u{200C}b", "a\u{200D}b", "\u{202E}ab", "\u{2066}ab\u{2069}", "a\u{00AD}b"] {
            assert!(validate_dj_name(invisible).unwrap_err().contains("invisible"), "{invisible:?}");
        }
        assert_eq!(normalize_dj_name("ＤＪ　Ｓｈａｄｏｗ").unwrap(), "DJ Shadow");
        assert_eq!(normalize_dj_name("DJ ﬁ").unwrap(), "DJ fi");
        assert!(normalize_dj_name("＜script＞").is_err(), "checked after normalising");
        assert!(normalize_dj_name("x\u{FEFF}").is_err());
        assert!(validate_email("a@b.org").is_ok());
        assert!(validate_email("a@b").is_err());
        assert!(validate_email("a b@c.org").is_err());
        assert!(validate_password("short").is_err());
        assert!(validate_password("long enough").is_ok());
    }
}
