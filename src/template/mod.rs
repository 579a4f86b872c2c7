//! The `scaffolder.backstage.io/v1beta3` template model, where templates come
//! from (`TemplateSource`), and parameter validation.

pub mod catalog;
pub mod git;
mod model;
mod params;
pub mod source;
pub mod version;

pub use crate::domain::entity_ref::{EntityRef, EntityRefError};
pub use model::{LoadedTemplate, Step, TemplateError, TemplateSpec, API_VERSION};
pub use params::{validate_parameters, validate_secrets, ParameterError};
pub use source::{DirTemplateSource, StaticTemplateSource, TemplateSource, TemplateSourceError, Templates};
