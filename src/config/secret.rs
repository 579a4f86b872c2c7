//! Settings that must never be printed: tokens and keys ([`Secret`]) and the
//! database URL ([`DatabaseUrl`], printed with its password masked). `Debug`
//! of the whole `Settings` tree is therefore safe to log.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

/// A token or key. `Debug` prints `[redacted]`; the value is wiped from
/// memory when dropped (`secrecy`).
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// The value, for the one place that sends or compares it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value.into())
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.into())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret::from)
    }
}

/// A PostgreSQL URL whose password never prints: `Debug` and `Display` show
/// it as `***`.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    /// The full URL, for the driver.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with its password replaced by `***` (a URL that does not
    /// parse could hide one anywhere: it is not shown at all).
    pub fn masked(&self) -> String {
        match url::Url::parse(self.expose()) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                url.to_string()
            }
            Err(_) => "[unparseable URL redacted]".to_owned(),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.masked())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

impl From<String> for DatabaseUrl {
    fn from(value: String) -> DatabaseUrl {
        DatabaseUrl(value.into())
    }
}

impl From<&str> for DatabaseUrl {
    fn from(value: &str) -> DatabaseUrl {
        DatabaseUrl(value.into())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<DatabaseUrl, D::Error> {
        String::deserialize(deserializer).map(DatabaseUrl::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_passwords_never_print() {
        let token = Secret::from("12345678");
        assert_eq!(format!("{token:?}"), "[redacted]");
        assert_eq!(token.expose(), "12345678");
        let url = DatabaseUrl::from("postgres://app:s3cr%40t@db:5432/scaffolder");
        assert_eq!(url.masked(), "postgres://app:***@db:5432/scaffolder");
        assert!(!format!("{url:?} {url}").contains("s3cr"));
        assert_eq!(url.expose(), "postgres://app:s3cr%40t@db:5432/scaffolder");
        let plain = DatabaseUrl::from("postgres://postgres@127.0.0.1:5432/scaffolder");
        assert_eq!(plain.to_string(), "postgres://postgres@127.0.0.1:5432/scaffolder");
        assert!(!DatabaseUrl::from("postgres://a:hunter2@[bad")
            .masked()
            .contains("hunter2"));
    }
}
