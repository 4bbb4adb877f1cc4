//! Provisioning from the command line: vaulting generated credentials so a
//! password is never shown, logged or lost.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use zeroize::Zeroizing;

use connector_runtime::Credential;

/// Where a generated password goes. Chosen, and the file created, before the
/// account is: a password with nowhere safe to go is never generated.
pub enum Vault {
    /// A new file, mode 0600, holding `{"login", "password"}` (or its age
    /// encryption when a recipient is given too).
    File {
        path: PathBuf,
        file: std::fs::File,
        recipient: Option<age::x25519::Recipient>,
    },
    /// Only the recipient's key can read it, so the ciphertext may go to stdout.
    Stdout(age::x25519::Recipient),
}

impl Vault {
    /// Opens the vault before anything is sent. `None` when the caller gave
    /// neither option.
    pub fn open(
        credentials_out: Option<&Path>,
        age_recipient: Option<&str>,
    ) -> anyhow::Result<Option<Vault>> {
        let recipient = age_recipient
            .map(|r| {
                r.trim().parse::<age::x25519::Recipient>().map_err(|e| {
                    anyhow::anyhow!("--age-recipient is not an age X25519 public key (age1…): {e}")
                })
            })
            .transpose()?;
        match (credentials_out, recipient) {
            (Some(path), recipient) => {
                let file = create_private(path)?;
                Ok(Some(Vault::File {
                    path: path.to_path_buf(),
                    file,
                    recipient,
                }))
            }
            (None, Some(r)) => Ok(Some(Vault::Stdout(r))),
            (None, None) => Ok(None),
        }
    }

    /// Stores the credential; returns where it went, for the one-line report.
    pub fn store(self, credential: &Credential) -> anyhow::Result<String> {
        let plain = Zeroizing::new(
            serde_json::to_vec(&serde_json::json!({
                "login": credential.login,
                "password": credential.password.as_str(),
            }))
            .context("cannot encode the credential")?,
        );
        match self {
            Vault::File {
                path,
                mut file,
                recipient,
            } => {
                let result = (|| -> anyhow::Result<()> {
                    match recipient {
                        Some(r) => file.write_all(encrypt(&r, &plain)?.as_bytes())?,
                        None => file.write_all(&plain)?,
                    }
                    file.sync_all()?;
                    Ok(())
                })();
                if let Err(e) = result {
                    let _ = std::fs::remove_file(&path);
                    return Err(
                        e.context(format!("cannot write the credential to {}", path.display()))
                    );
                }
                Ok(format!("credential stored in {}", path.display()))
            }
            Vault::Stdout(r) => {
                let armored = encrypt(&r, &plain)?;
                let mut out = std::io::stdout().lock();
                out.write_all(armored.as_bytes())?;
                out.flush()?;
                Ok("credential encrypted to the age recipient on stdout".to_string())
            }
        }
    }

    /// Removes a credentials file created for an account that was not created.
    pub fn discard(self) {
        if let Vault::File { path, file, .. } = self {
            drop(file);
            let _ = std::fs::remove_file(path);
        }
    }
}

fn encrypt(recipient: &age::x25519::Recipient, plain: &[u8]) -> anyhow::Result<String> {
    age::encrypt_and_armor(recipient, plain)
        .map_err(|e| anyhow::anyhow!("cannot encrypt the credential: {e}"))
}

/// Creates the file exclusively with mode 0600: never overwrite another
/// credential, never leave one readable by others.
fn create_private(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "--credentials-out {} already exists: choose a new file (an existing credential is never overwritten)",
                path.display()
            )
        } else {
            anyhow::anyhow!("cannot create --credentials-out {}: {e}", path.display())
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_credentials_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cred.json");
        let vault = Vault::open(Some(&path), None).unwrap().unwrap();
        vault
            .store(&Credential {
                login: "a@b.c".into(),
                password: zeroize::Zeroizing::new("pw".into()),
            })
            .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let err = Vault::open(Some(&path), None).err().unwrap().to_string();
        assert!(err.contains("already exists"), "{err}");
    }

    #[test]
    fn a_bad_recipient_is_refused_before_anything_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cred.age");
        assert!(Vault::open(Some(&path), Some("not-a-key")).is_err());
        assert!(!path.exists());
    }
}
