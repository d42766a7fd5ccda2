//! Key files: a JSON Multikey document holding the secret, written with mode
//! 0600 and refused on load if anyone else can read it.
//!
//! Format: `{"type":"Multikey","id":…,"controller":<did>,
//! "publicKeyMultibase":"z6Mk…","secretKeyMultibase":"z3u2…"}` where the
//! secret is multicodec `ed25519-priv` (0x1300) in base58btc, the same
//! encoding as the W3C test vectors' `privateKeyMultibase` (also accepted).

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::keys::{KeyError, Keypair};

/// Multicodec varint for `ed25519-priv`.
const ED25519_PRIV: [u8; 2] = [0x80, 0x26];

/// Why a key file could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file exists; key files are never overwritten.
    #[error(
        "{0} already exists; refusing to overwrite a key file (remove it or choose another path)"
    )]
    Exists(PathBuf),
    /// Reading or writing failed.
    #[error("cannot access key file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Group or others may read the file.
    #[error("key file {path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a valid key file.
    #[error("{path} is not a valid key file: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyFileJson {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    controller: Option<String>,
    public_key_multibase: String,
    #[serde(alias = "privateKeyMultibase")]
    secret_key_multibase: String,
}

impl Drop for KeyFileJson {
    fn drop(&mut self) {
        self.secret_key_multibase.zeroize();
    }
}

/// Encodes the secret as `ed25519-priv` multibase (`z3u2…`).
pub fn secret_multibase(keypair: &Keypair) -> Zeroizing<String> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(34));
    bytes.extend_from_slice(&ED25519_PRIV);
    bytes.extend_from_slice(keypair.to_seed().as_ref());
    Zeroizing::new(multibase::encode(
        multibase::Base::Base58Btc,
        bytes.as_slice(),
    ))
}

/// Decodes an `ed25519-priv` multibase secret.
pub fn keypair_from_secret_multibase(s: &str) -> Result<Keypair, String> {
    let bytes = Zeroizing::new(
        s.strip_prefix('z')
            .and_then(|r| multibase::Base::Base58Btc.decode(r).ok())
            .ok_or("the secret is not multibase base58btc ('z…')")?,
    );
    let seed = bytes
        .strip_prefix(&ED25519_PRIV[..])
        .ok_or("the secret is not an ed25519-priv multikey")?;
    Keypair::from_seed_slice(seed).map_err(|e: KeyError| e.to_string())
}

/// Serializes a key pair as key-file JSON (contains the secret).
pub fn to_json(keypair: &Keypair) -> Zeroizing<String> {
    let did = keypair.did();
    let json = KeyFileJson {
        kind: "Multikey".into(),
        id: Some(did.verification_method()),
        controller: Some(did.as_str().to_owned()),
        public_key_multibase: did.multibase().to_owned(),
        secret_key_multibase: secret_multibase(keypair).to_string(),
    };
    Zeroizing::new(serde_json::to_string_pretty(&json).unwrap_or_default() + "\n")
}

/// Parses key-file JSON and checks that the public key matches the secret.
pub fn from_json(text: &str) -> Result<Keypair, String> {
    let json: KeyFileJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if json.kind != "Multikey" {
        return Err(format!("type is {:?}, expected \"Multikey\"", json.kind));
    }
    let kp = keypair_from_secret_multibase(&json.secret_key_multibase)?;
    if kp.did().multibase() != json.public_key_multibase {
        return Err("publicKeyMultibase does not match the secret key".into());
    }
    Ok(kp)
}

/// Writes a new key file with mode 0600. Never overwrites.
pub fn write(path: &Path, keypair: &Keypair) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut file = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists(path.to_owned())
        } else {
            io(e)
        }
    })?;
    file.write_all(to_json(keypair).as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Loads a key file, refusing one that group or others can read.
pub fn load(path: &Path) -> Result<Keypair, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::InsecurePermissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
    from_json(&text).map_err(|reason| KeyFileError::Invalid {
        path: path.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key path in a scratch directory that is removed when the test ends.
    fn tmp() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::Builder::new()
            .prefix("identity-keyfile-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("key.json");
        (dir, path)
    }

    #[test]
    fn written_key_files_are_private_and_load_back() {
        let (_dir, path) = tmp();
        let kp = Keypair::from_seed(&[5u8; 32]);
        write(&path, &kp).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(load(&path).unwrap().did(), kp.did());
    }

    #[test]
    fn key_files_are_never_overwritten() {
        let (_dir, path) = tmp();
        write(&path, &Keypair::from_seed(&[5u8; 32])).unwrap();
        assert!(matches!(
            write(&path, &Keypair::from_seed(&[6u8; 32])),
            Err(KeyFileError::Exists(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn readable_key_files_are_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt as _;
        let (_dir, path) = tmp();
        write(&path, &Keypair::from_seed(&[5u8; 32])).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&path).unwrap_err();
        assert!(matches!(
            err,
            KeyFileError::InsecurePermissions { mode: 0o644, .. }
        ));
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn a_public_key_that_does_not_match_the_secret_is_refused() {
        let a = Keypair::from_seed(&[5u8; 32]);
        let b = Keypair::from_seed(&[6u8; 32]);
        let text = to_json(&a).replace(a.did().multibase(), b.did().multibase());
        assert!(from_json(&text).unwrap_err().contains("does not match"));
    }

    #[test]
    fn the_w3c_vector_secret_decodes() {
        let kp = keypair_from_secret_multibase("z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq")
            .unwrap();
        assert_eq!(
            kp.did().multibase(),
            "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
        );
    }
}
