//! Re-sealing the stored task secrets with the primary key (at every start
//! for plaintext left by older versions; `scaffolder secrets rotate` for all).

use crate::secrets::{Keyring, Reseal, ResealReport, SecretsError};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Re-seals every stored secret that [`Keyring::reseal`] says to rewrite; a
/// task that ended or was retried meanwhile keeps what it has.
pub async fn reseal_stored(
    keyring: &Keyring,
    store: &Store,
    plaintext_only: bool,
) -> Result<ResealReport, ResealError> {
    let mut report = ResealReport::default();
    for (id, stored) in store.stored_secrets().await? {
        match keyring.reseal(id, &stored, plaintext_only)? {
            Reseal::Keep => {}
            Reseal::Unreadable => report.unreadable += 1,
            Reseal::Rewrite(sealed) => {
                if store.replace_secrets(id, &stored, &sealed).await? {
                    report.resealed += 1;
                }
            }
        }
    }
    Ok(report)
}
