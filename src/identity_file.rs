//! The identity key file in the data directory: created on first start with mode 0600, reused
//! after. Losing or replacing it changes the daemon's identity and its log's origin.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use wasm_hypervisor_protocol::identity::IdentityKey;
use zeroize::Zeroizing;

/// The key file's name in the data directory.
pub const FILE_NAME: &str = "identity.key";

/// Why the identity key could not be loaded or created; the daemon refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum IdentityFileError {
    /// The file or its directory cannot be read or written.
    #[error("cannot read or write {path}")]
    Io {
        /// The key file.
        path: String,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The file exists but does not hold a key.
    #[error("{path} does not hold a P-256 private key (32 bytes, hex)")]
    Invalid {
        /// The key file.
        path: String,
    },
    /// The file is open to others, so the key may have leaked.
    #[error("{path} is readable by group or others (mode {mode:o}); it must be 0600")]
    Permissions {
        /// The key file.
        path: String,
        /// The file's permission bits.
        mode: u32,
    },
}

/// Loads the identity key from `data_dir`, generating it on first start.
pub fn load_or_create(data_dir: &Path) -> Result<IdentityKey, IdentityFileError> {
    let path = data_dir.join(FILE_NAME);
    let display = path.display().to_string();
    let io_error = |source| IdentityFileError::Io {
        path: display.clone(),
        source,
    };
    fs::create_dir_all(data_dir).map_err(io_error)?;
    match fs::read_to_string(&path) {
        Ok(text) => {
            let mode = fs::metadata(&path).map_err(io_error)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(IdentityFileError::Permissions {
                    path: display,
                    mode,
                });
            }
            let text = Zeroizing::new(text);
            let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| {
                IdentityFileError::Invalid {
                    path: display.clone(),
                }
            })?);
            IdentityKey::from_secret_bytes(&bytes)
                .map_err(|_| IdentityFileError::Invalid { path: display })
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let key = IdentityKey::generate(&mut getrandom::SysRng)
                .map_err(|error| io_error(io::Error::other(error)))?;
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io_error)?;
            let encoded = Zeroizing::new(format!("{}\n", hex::encode(&*key.to_secret_bytes())));
            file.write_all(encoded.as_bytes()).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
            // The new name must survive a crash too.
            fs::File::open(data_dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io_error)?;
            Ok(key)
        }
        Err(error) => Err(io_error(error)),
    }
}
