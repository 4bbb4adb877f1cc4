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
        file: PendingFile,
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
            (Some(path), recipient) => Ok(Some(Vault::File {
                file: PendingFile {
                    file: create_private(path)?,
                    path: path.to_path_buf(),
                    kept: false,
                },
                recipient,
            })),
            (None, Some(r)) => Ok(Some(Vault::Stdout(r))),
            (None, None) => Ok(None),
        }
    }

    /// Stores the credential; returns where it went, for the one-line report.
    pub fn store(self, credential: &Credential) -> anyhow::Result<String> {
        let plain = plain_json(credential)?;
        match self {
            Vault::File {
                file: mut pending,
                recipient,
            } => {
                let file = &mut pending.file;
                let result = (|| -> anyhow::Result<()> {
                    match recipient {
                        Some(r) => file.write_all(encrypt(&r, &plain)?.as_bytes())?,
                        None => file.write_all(&plain)?,
                    }
                    file.sync_all()?;
                    Ok(())
                })();
                // On error the pending file is removed as it drops.
                result.with_context(|| {
                    format!("cannot write the credential to {}", pending.path.display())
                })?;
                pending.kept = true;
                Ok(format!("credential stored in {}", pending.path.display()))
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

    /// Removes a credentials file created for an account that was not
    /// created. Dropping the vault does the same; this says so where it is
    /// meant.
    pub fn discard(self) {
        drop(self);
    }
}

/// The credentials file, created before the account so a password always has
/// somewhere to go, and removed again unless a credential was written into
/// it: on every error path, and when Ctrl-C drops the command mid-way, no
/// empty file is left to block a retry.
pub struct PendingFile {
    path: PathBuf,
    file: std::fs::File,
    kept: bool,
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `{"login", "password"}` written straight into a buffer sized up front, so
/// no copy of the password is left behind unzeroized (neither a JSON value
/// nor a buffer that grew and was freed).
fn plain_json(credential: &Credential) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    #[derive(serde::Serialize)]
    struct Plain<'a> {
        login: &'a str,
        password: &'a str,
    }
    // JSON escapes a character in at most six bytes.
    let room = 6 * (credential.login.len() + credential.password.len()) + 32;
    let mut plain = Zeroizing::new(Vec::with_capacity(room));
    serde_json::to_writer(
        &mut *plain,
        &Plain {
            login: &credential.login,
            password: credential.password.as_str(),
        },
    )
    .context("cannot encode the credential")?;
    Ok(plain)
}

/// The credential as `{"login", "password"}`, encrypted and armored for
/// `recipient`: the only form in which the service's API returns one.
pub fn encrypt_credential(
    recipient: &age::x25519::Recipient,
    credential: &Credential,
) -> anyhow::Result<String> {
    encrypt(recipient, &plain_json(credential)?)
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
    fn an_unused_vault_leaves_no_file_however_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cred.json");
        let vault = Vault::open(Some(&path), None).unwrap();
        assert!(path.exists());
        drop(vault);
        assert!(!path.exists(), "dropped on an error path");
        Vault::open(Some(&path), None).unwrap().unwrap().discard();
        assert!(!path.exists(), "discarded");
    }

    #[test]
    fn the_stored_json_holds_login_and_password() {
        let plain = plain_json(&Credential {
            login: "a@b.c".into(),
            password: zeroize::Zeroizing::new("p\"w".into()),
        })
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(v["login"], "a@b.c");
        assert_eq!(v["password"], "p\"w");
    }

    #[test]
    fn a_bad_recipient_is_refused_before_anything_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cred.age");
        assert!(Vault::open(Some(&path), Some("not-a-key")).is_err());
        assert!(!path.exists());
    }
}
