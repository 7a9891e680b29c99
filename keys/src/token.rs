//! Join tokens: `weft-<W|M>-<CA fingerprint, 64 hex>-<secret, 64 hex>`.
//!
//! A token says which role a joiner gets (worker or manager), which CA the joiner must find on
//! the seed (so a joiner is never fooled by a man in the middle), and a 32-byte secret the
//! joiner proves it knows. A token is a secret: it is printed only through `Display`, on
//! request (`weft cluster token`); its `Debug` form and parse errors never show the secret.

use crate::ca::CaFingerprint;
use std::fmt;
use std::str::FromStr;
use zeroize::Zeroizing;

/// The length of a token secret, in bytes.
pub const SECRET_LEN: usize = 32;
const PREFIX: &str = "weft";

/// The role a token grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A worker: runs containers, asks managers for allocations.
    Worker,
    /// A manager: holds the CA and the allocator.
    Manager,
}

impl Role {
    fn letter(self) -> char {
        match self {
            Role::Worker => 'W',
            Role::Manager => 'M',
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Worker => "worker",
            Role::Manager => "manager",
        })
    }
}

/// A token could not be made or parsed. The messages never contain the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("invalid join token: expected weft-<W|M>-<fingerprint>-<secret>")]
    Shape,
    #[error("invalid join token: it does not start with \"weft-\"")]
    WrongPrefix,
    #[error("invalid join token: role {0:?} is neither W (worker) nor M (manager)")]
    BadRole(String),
    #[error("invalid join token: the CA fingerprint must be 64 hex digits, found {len} characters")]
    FingerprintLength { len: usize },
    #[error("invalid join token: the CA fingerprint is not hex")]
    FingerprintHex,
    #[error("invalid join token: the secret must be 64 hex digits")]
    BadSecret,
    #[error("failed to generate a join token: the system random generator failed")]
    Random,
}

/// A join token: role, CA fingerprint and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    role: Role,
    fingerprint: CaFingerprint,
    secret: Zeroizing<[u8; SECRET_LEN]>,
}

impl JoinToken {
    /// A new token with a random secret.
    pub fn generate(role: Role, fingerprint: CaFingerprint) -> Result<Self, TokenError> {
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret[..])
            .map_err(|_| TokenError::Random)?;
        Ok(Self {
            role,
            fingerprint,
            secret,
        })
    }

    /// The role it grants.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The fingerprint of the cluster CA.
    pub fn fingerprint(&self) -> CaFingerprint {
        self.fingerprint
    }

    /// The secret, to be sent (over a channel authenticated by the fingerprint) to the seed.
    pub fn secret(&self) -> &[u8; SECRET_LEN] {
        &self.secret
    }

    /// Whether `presented` is this token's secret, compared in constant time.
    pub fn verify(&self, presented: &[u8]) -> bool {
        if presented.len() != SECRET_LEN {
            return false;
        }
        let diff = self
            .secret
            .iter()
            .zip(presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = Zeroizing::new(hex::encode(&self.secret[..]));
        write!(
            f,
            "{PREFIX}-{}-{}-{}",
            self.role.letter(),
            self.fingerprint,
            secret.as_str()
        )
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("role", &self.role)
            .field("fingerprint", &self.fingerprint.to_string())
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl FromStr for JoinToken {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let mut parts = s.splitn(4, '-');
        let (Some(prefix), Some(role), Some(fp), Some(secret)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(if s.starts_with("weft-") {
                TokenError::Shape
            } else {
                TokenError::WrongPrefix
            });
        };
        if prefix != PREFIX {
            return Err(TokenError::WrongPrefix);
        }
        let role = match role {
            "W" => Role::Worker,
            "M" => Role::Manager,
            other => return Err(TokenError::BadRole(other.chars().take(8).collect())),
        };
        if fp.len() != 64 {
            return Err(TokenError::FingerprintLength { len: fp.len() });
        }
        let fingerprint = fp
            .parse::<CaFingerprint>()
            .map_err(|_| TokenError::FingerprintHex)?;
        let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
        if secret.len() != 2 * SECRET_LEN {
            return Err(TokenError::BadSecret);
        }
        hex::decode_to_slice(secret, &mut bytes[..]).map_err(|_| TokenError::BadSecret)?;
        Ok(Self {
            role,
            fingerprint,
            secret: bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp() -> CaFingerprint {
        CaFingerprint([0xab; 32])
    }

    #[test]
    fn round_trip_both_roles() {
        for role in [Role::Worker, Role::Manager] {
            let token = JoinToken::generate(role, fp()).unwrap();
            let text = token.to_string();
            assert!(text.starts_with(if role == Role::Worker {
                "weft-W-"
            } else {
                "weft-M-"
            }));
            assert_eq!(text.len(), 5 + 2 + 65 + 64);
            let back: JoinToken = text.parse().unwrap();
            assert_eq!(back, token);
            assert_eq!(back.role(), role);
            assert_eq!(back.fingerprint(), fp());
        }
    }

    #[test]
    fn two_tokens_differ() {
        let a = JoinToken::generate(Role::Worker, fp()).unwrap();
        let b = JoinToken::generate(Role::Worker, fp()).unwrap();
        assert_ne!(a.secret(), b.secret());
    }

    #[test]
    fn verify_is_exact() {
        let token = JoinToken::generate(Role::Worker, fp()).unwrap();
        assert!(token.verify(token.secret()));
        let mut wrong = *token.secret();
        wrong[31] ^= 1;
        assert!(!token.verify(&wrong));
        assert!(!token.verify(&token.secret()[..31]));
        assert!(!token.verify(&[]));
    }

    #[test]
    fn refusals_are_clear() {
        let good = JoinToken::generate(Role::Worker, fp()).unwrap().to_string();
        let fp_hex = fp().to_string();
        let secret = "cd".repeat(32);
        let cases = [
            ("swarm-W-x-y".to_owned(), TokenError::WrongPrefix),
            ("nonsense".to_owned(), TokenError::WrongPrefix),
            ("weft-W-abc".to_owned(), TokenError::Shape),
            (
                format!("weft-X-{fp_hex}-{secret}"),
                TokenError::BadRole("X".into()),
            ),
            (
                format!("weft-W-abcd-{secret}"),
                TokenError::FingerprintLength { len: 4 },
            ),
            (
                format!("weft-W-{}-{secret}", "zz".repeat(32)),
                TokenError::FingerprintHex,
            ),
            (format!("weft-W-{fp_hex}-abcd"), TokenError::BadSecret),
            (
                format!("weft-W-{fp_hex}-{}", "zz".repeat(32)),
                TokenError::BadSecret,
            ),
            (format!("{good}-extra"), TokenError::BadSecret),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<JoinToken>().unwrap_err(), want, "{text}");
        }
    }

    #[test]
    fn debug_and_errors_never_show_the_secret() {
        let token = JoinToken::generate(Role::Manager, fp()).unwrap();
        let secret_hex = hex::encode(token.secret());
        let debug = format!("{token:?}");
        assert!(debug.contains("redacted"));
        assert!(!debug.contains(&secret_hex));
        assert!(!debug.contains(&secret_hex[..16]));
        let broken = format!("weft-Q-{}-{secret_hex}", fp());
        let err = broken.parse::<JoinToken>().unwrap_err().to_string();
        assert!(!err.contains(&secret_hex[..16]), "{err}");
        assert!(token.to_string().contains(&secret_hex));
    }
}

/// The join tokens a manager hands out, stored together in one private file.
#[derive(Debug, Clone)]
pub struct ClusterTokens {
    pub worker: JoinToken,
    pub manager: JoinToken,
}

/// A token file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("failed to write token file {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("failed to read token file {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("token file {path} has mode {mode:o}: others can read it; chmod 600 it")]
    Exposed { path: std::path::PathBuf, mode: u32 },
    #[error("token file {path}: {reason}")]
    Parse {
        path: std::path::PathBuf,
        reason: String,
    },
}

impl ClusterTokens {
    /// Fresh worker and manager tokens for the CA with `fingerprint`.
    pub fn generate(fingerprint: CaFingerprint) -> Result<Self, TokenError> {
        Ok(ClusterTokens {
            worker: JoinToken::generate(Role::Worker, fingerprint)?,
            manager: JoinToken::generate(Role::Manager, fingerprint)?,
        })
    }

    /// The token of `role`.
    pub fn for_role(&self, role: Role) -> &JoinToken {
        match role {
            Role::Worker => &self.worker,
            Role::Manager => &self.manager,
        }
    }

    /// Writes both tokens, one per line, atomically with mode 0600.
    pub fn save(&self, path: &std::path::Path) -> Result<(), TokenFileError> {
        let text = zeroize::Zeroizing::new(format!("{}\n{}\n", self.worker, self.manager));
        crate::keyfile::write_atomic(path, text.as_bytes(), 0o600).map_err(|source| {
            TokenFileError::Write {
                path: path.to_owned(),
                source,
            }
        })
    }

    /// Reads a file written by [`ClusterTokens::save`].
    pub fn load(path: &std::path::Path) -> Result<Self, TokenFileError> {
        let read = |source| TokenFileError::Read {
            path: path.to_owned(),
            source,
        };
        if let Some(mode) = crate::keyfile::exposed_mode(path).map_err(read)? {
            return Err(TokenFileError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(read)?);
        let parse = |reason: String| TokenFileError::Parse {
            path: path.to_owned(),
            reason,
        };
        let mut tokens = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim().parse::<JoinToken>());
        let worker = tokens
            .next()
            .ok_or_else(|| parse("no worker token".into()))?
            .map_err(|e| parse(e.to_string()))?;
        let manager = tokens
            .next()
            .ok_or_else(|| parse("no manager token".into()))?
            .map_err(|e| parse(e.to_string()))?;
        if worker.role() != Role::Worker || manager.role() != Role::Manager {
            return Err(parse(
                "expected the worker token, then the manager token".into(),
            ));
        }
        Ok(ClusterTokens { worker, manager })
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tokens_round_trip_privately_and_refuse_exposure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let tokens = ClusterTokens::generate(CaFingerprint([7; 32])).unwrap();
        tokens.save(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let back = ClusterTokens::load(&path).unwrap();
        assert_eq!(back.worker.to_string(), tokens.worker.to_string());
        assert_eq!(
            back.for_role(Role::Manager).to_string(),
            tokens.manager.to_string()
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            ClusterTokens::load(&path),
            Err(TokenFileError::Exposed { .. })
        ));
    }
}
