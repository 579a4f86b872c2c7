//! A test certificate authority standing in for Fulcio: a root, an
//! intermediate, and short-lived leaf certificates naming a workflow (URI
//! subject alternative name) and the OIDC issuer (Fulcio's extension
//! `1.3.6.1.4.1.57264.1.8`).

use std::str::FromStr;
use std::time::Duration;

use p256::ecdsa::{DerSignature, SigningKey};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::asn1::{Ia5String, Utf8StringRef};
use x509_cert::der::oid::{AssociatedOid, ObjectIdentifier};
use x509_cert::der::EncodePem;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::AsExtension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;
use x509_cert::Certificate;

/// Fulcio's OIDC issuer extension (v2: a DER UTF8String).
struct FulcioIssuer(String);

impl AssociatedOid for FulcioIssuer {
    const OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
}

impl x509_cert::der::Encode for FulcioIssuer {
    fn encoded_len(&self) -> x509_cert::der::Result<x509_cert::der::Length> {
        Utf8StringRef::new(&self.0)?.encoded_len()
    }
    fn encode(&self, writer: &mut impl x509_cert::der::Writer) -> x509_cert::der::Result<()> {
        Utf8StringRef::new(&self.0)?.encode(writer)
    }
}

impl AsExtension for FulcioIssuer {
    fn critical(&self, _: &Name, _: &[x509_cert::ext::Extension]) -> bool {
        false
    }
}

pub struct TestCa {
    pub root: Certificate,
    root_key: SigningKey,
    pub intermediate: Certificate,
    intermediate_key: SigningKey,
}

fn pem(cert: &Certificate) -> String {
    cert.to_pem(x509_cert::der::pem::LineEnding::LF).expect("pem")
}

fn spki(key: &SigningKey) -> SubjectPublicKeyInfoOwned {
    SubjectPublicKeyInfoOwned::from_key(*key.verifying_key()).expect("spki")
}

fn validity() -> Validity {
    Validity::from_now(Duration::from_secs(3600)).expect("validity")
}

fn random_key() -> SigningKey {
    SigningKey::random(&mut rand::rngs::OsRng)
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let root_key = random_key();
        let root_name = Name::from_str(&format!("CN={name} root,O=test")).expect("name");
        let root = CertificateBuilder::new(
            Profile::Root,
            SerialNumber::from(1u32),
            validity(),
            root_name.clone(),
            spki(&root_key),
            &root_key,
        )
        .expect("root builder")
        .build::<DerSignature>()
        .expect("root");
        let intermediate_key = random_key();
        let intermediate = CertificateBuilder::new(
            Profile::SubCA {
                issuer: root_name,
                path_len_constraint: Some(0),
            },
            SerialNumber::from(2u32),
            validity(),
            Name::from_str(&format!("CN={name} intermediate,O=test")).expect("name"),
            spki(&intermediate_key),
            &root_key,
        )
        .expect("intermediate builder")
        .build::<DerSignature>()
        .expect("intermediate");
        TestCa {
            root,
            root_key,
            intermediate,
            intermediate_key,
        }
    }

    pub fn root_pem(&self) -> String {
        pem(&self.root)
    }

    /// The chain annotation: intermediate then root, as Fulcio sends it.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", pem(&self.intermediate), pem(&self.root))
    }

    /// A leaf for `identity` from `issuer`, with a fresh key returned beside it.
    pub fn leaf(&self, identity: &str, issuer: &str) -> (String, SigningKey) {
        let key = random_key();
        let mut builder = CertificateBuilder::new(
            Profile::Leaf {
                issuer: self.intermediate.tbs_certificate.subject.clone(),
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
            SerialNumber::from(rand::random::<u32>()),
            Validity::from_now(Duration::from_secs(600)).expect("validity"),
            Name::default(),
            spki(&key),
            &self.intermediate_key,
        )
        .expect("leaf builder");
        builder
            .add_extension(&SubjectAltName(vec![GeneralName::UniformResourceIdentifier(
                Ia5String::new(identity).expect("uri"),
            )]))
            .expect("san");
        builder.add_extension(&FulcioIssuer(issuer.to_owned())).expect("issuer");
        let leaf = builder.build::<DerSignature>().expect("leaf");
        let _ = &self.root_key;
        (pem(&leaf), key)
    }
}
