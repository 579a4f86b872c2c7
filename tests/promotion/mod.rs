//! Promotion of signed image digests: the registry and cosign checks
//! against a real `docker-registry` with images pushed by `skopeo`.

mod ca;
mod e2e;
mod issuer;
mod oidc;
mod registry;
mod verify;
