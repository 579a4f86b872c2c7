//! Nunjucks-compatible template rendering for the scaffolder.
//!
//! Backstage renders step inputs, `if`/`each`/`output` values and
//! `fetch:template` files with nunjucks (`${{ }}` variables, `{% %}` blocks,
//! `{# #}` comments, autoescape off). This module reproduces that on top of
//! minijinja:
//!
//! - `syntax.rs` translates nunjucks expressions (JS operators, `.length`,
//!   `===`, bare dict keys, regex literals) into minijinja source;
//! - `values.rs` gives values JS semantics (printing, truthiness, JSON);
//! - `js.rs` implements JS operators and string/array methods;
//! - `filters.rs` nunjucks' built-in filters, tests and globals;
//! - `backstage.rs` Backstage's `parseRepoUrl`, `parseEntityRef`, `pick`,
//!   `projectSlug`;
//! - `extensions.rs` the `GET /v2/templating-extensions` listing.
//!
//! **Invariant:** templating does no IO; a render is bounded by a fuel limit
//! and an output-size limit, so hostile templates fail instead of hanging.

mod backstage;
mod extensions;
mod filters;
mod js;
mod syntax;
mod values;

use std::fmt;
use std::io;
use std::sync::Arc;

use minijinja::value::{Rest, Value};
use minijinja::{Environment, ErrorKind, UndefinedBehavior};

pub use backstage::{parse_repo_url, Integrations, RepoSpec};
pub use extensions::templating_extensions;
pub(crate) use filters::URI_COMPONENT;

/// `${{ expr }}`, compiled once: every renderer (one per `fetch:template`
/// step) uses it.
static SINGLE_EXPR: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| regex::Regex::new(r"\$\{\{(.+)\}\}").ok());

pub use crate::config::DEFAULT_FUEL;
pub use crate::config::DEFAULT_OUTPUT_LIMIT;

/// Options of a renderer (the `fetch:template` inputs that affect syntax).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// `{{ }}` variables instead of `${{ }}`, and the `jsonify` filter
    /// (Backstage's `cookiecutterCompat`); Backstage's own filters are not
    /// available in this mode, as in Backstage.
    pub cookiecutter_compat: bool,
    /// Remove the first newline after a block tag.
    pub trim_blocks: bool,
    /// Strip whitespace from the start of a line up to a block tag.
    pub lstrip_blocks: bool,
}

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template does not parse.
    #[error("template syntax error: {0}")]
    Syntax(String),
    /// Evaluation failed (unknown filter, calling undefined, bad argument…).
    #[error("template render error: {0}")]
    Render(String),
    /// The template ran out of its instruction budget.
    #[error("template exceeded its execution budget of {0} instructions")]
    FuelExhausted(u64),
    /// The rendered text grew beyond the output limit.
    #[error("template output exceeds the limit of {0} bytes")]
    OutputTooLarge(usize),
}

/// Why an installation's filter or function refused its arguments: the
/// message becomes the render error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExtensionError(pub String);

impl From<String> for ExtensionError {
    fn from(message: String) -> Self {
        ExtensionError(message)
    }
}

impl From<&str> for ExtensionError {
    fn from(message: &str) -> Self {
        ExtensionError(message.to_owned())
    }
}

/// A filter added by an installation. Arguments and result travel as JSON,
/// as Backstage passes them to additional filters; `Ok(None)` is
/// `undefined`, `Err` a render error with that message.
pub type FilterFn =
    dyn Fn(&serde_json::Value, &[serde_json::Value]) -> Result<Option<serde_json::Value>, ExtensionError> + Send + Sync;

/// A global function added by an installation (same conventions as
/// [`FilterFn`]).
pub type GlobalFn = dyn Fn(&[serde_json::Value]) -> Result<Option<serde_json::Value>, ExtensionError> + Send + Sync;

/// Builds a [`Renderer`] with extra filters, globals and integrations.
pub struct RendererBuilder {
    options: RenderOptions,
    integrations: Integrations,
    extensions: Extensions,
    fuel: u64,
    output_limit: usize,
}

/// Filters and globals added to the built-in ones (those of the action
/// bridges' modules). The renderer of template expressions keeps its set,
/// and the actions that render files (`fetch:template`) build theirs with
/// the same one, as Backstage hands its templating extensions to both.
#[derive(Clone, Default)]
pub struct Extensions {
    filters: Vec<(String, Arc<FilterFn>, Option<serde_json::Value>)>,
    global_values: Vec<(String, serde_json::Value)>,
    global_functions: Vec<(String, Arc<GlobalFn>)>,
}

impl Extensions {
    /// No filter and no global.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty() && self.global_values.is_empty() && self.global_functions.is_empty()
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("filters", &self.filters.iter().map(|(n, _, _)| n).collect::<Vec<_>>())
            .field(
                "global_values",
                &self.global_values.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field(
                "global_functions",
                &self.global_functions.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for RendererBuilder {
    fn default() -> Self {
        RendererBuilder {
            options: RenderOptions::default(),
            integrations: Integrations::default(),
            extensions: Extensions::default(),
            fuel: DEFAULT_FUEL,
            output_limit: DEFAULT_OUTPUT_LIMIT,
        }
    }
}

impl RendererBuilder {
    /// Syntax options (`fetch:template`).
    pub fn options(mut self, options: RenderOptions) -> Self {
        self.options = options;
        self
    }

    /// The SCM hosts `parseRepoUrl`/`projectSlug` accept.
    pub fn integrations(mut self, integrations: Integrations) -> Self {
        self.integrations = integrations;
        self
    }

    /// Adds a filter (not listed by `templating-extensions`).
    pub fn filter<F>(self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(&serde_json::Value, &[serde_json::Value]) -> Result<Option<serde_json::Value>, ExtensionError>
            + Send
            + Sync
            + 'static,
    {
        self.filter_entry(name.into(), Arc::new(f), None)
    }

    /// Adds a filter listed by `templating-extensions` with `metadata`
    /// (`{description, schema, examples}`).
    pub fn documented_filter<F>(self, name: impl Into<String>, metadata: serde_json::Value, f: F) -> Self
    where
        F: Fn(&serde_json::Value, &[serde_json::Value]) -> Result<Option<serde_json::Value>, ExtensionError>
            + Send
            + Sync
            + 'static,
    {
        self.filter_entry(name.into(), Arc::new(f), Some(metadata))
    }

    fn filter_entry(mut self, name: String, f: Arc<FilterFn>, metadata: Option<serde_json::Value>) -> Self {
        self.extensions.filters.retain(|(n, _, _)| *n != name);
        self.extensions.filters.push((name, f, metadata));
        self
    }

    /// Adds every filter and global of `extensions` (another renderer's,
    /// [`Renderer::extensions`]); a filter of the same name is replaced.
    pub fn extensions(mut self, extensions: Extensions) -> Self {
        for (name, f, metadata) in extensions.filters {
            self = self.filter_entry(name, f, metadata);
        }
        self.extensions.global_values.extend(extensions.global_values);
        self.extensions.global_functions.extend(extensions.global_functions);
        self
    }

    /// Adds a global value.
    pub fn global_value(mut self, name: impl Into<String>, value: serde_json::Value) -> Self {
        self.extensions.global_values.push((name.into(), value));
        self
    }

    /// Adds a global function.
    pub fn global_function<F>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(&[serde_json::Value]) -> Result<Option<serde_json::Value>, ExtensionError> + Send + Sync + 'static,
    {
        self.extensions.global_functions.push((name.into(), Arc::new(f)));
        self
    }

    /// Instruction budget of one render.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = fuel;
        self
    }

    /// Maximum size of one rendered text, in bytes.
    pub fn output_limit(mut self, bytes: usize) -> Self {
        self.output_limit = bytes;
        self
    }

    /// Builds the renderer.
    pub fn build(self) -> Renderer {
        let delims = if self.options.cookiecutter_compat {
            syntax::COOKIECUTTER
        } else {
            syntax::BACKSTAGE
        };
        let mut env = Environment::empty();
        let syntax_config = minijinja::syntax::SyntaxConfig::builder()
            .block_delimiters(delims.block_start, delims.block_end)
            .variable_delimiters(delims.var_start, delims.var_end)
            .comment_delimiters(delims.comment_start, delims.comment_end)
            .build();
        // The delimiters are constants known to be valid.
        if let Ok(config) = syntax_config {
            env.set_syntax(config);
        }
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(self.options.trim_blocks);
        env.set_lstrip_blocks(self.options.lstrip_blocks);
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_fuel(Some(self.fuel));
        env.set_debug(false);
        env.set_formatter(|out, _state, value| {
            out.write_str(&values::to_output(value))
                .map_err(|_| minijinja::Error::new(ErrorKind::WriteFailure, "write failed"))
        });
        env.set_unknown_method_callback(js::call_method);
        js::register_operators(&mut env);
        filters::register(&mut env);

        let mut documented = Vec::new();
        let extensions = self.extensions.clone();
        if self.options.cookiecutter_compat {
            filters::register_jsonify(&mut env);
        } else {
            backstage::register(&mut env, Arc::new(self.integrations.clone()));
            for (name, f, metadata) in self.extensions.filters {
                if let Some(meta) = metadata {
                    documented.push((name.clone(), meta));
                }
                env.add_filter(name, move |v: Value, args: Rest<Value>| {
                    let input = values::to_json(&v).unwrap_or(serde_json::Value::Null);
                    let args: Vec<serde_json::Value> = args
                        .iter()
                        .filter(|a| !a.is_kwargs())
                        .map(|a| values::to_json(a).unwrap_or(serde_json::Value::Null))
                        .collect();
                    match f(&input, &args) {
                        Ok(Some(out)) => Ok(values::from_json(&out)),
                        Ok(None) => Ok(Value::UNDEFINED),
                        Err(ExtensionError(msg)) => Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg)),
                    }
                });
            }
            for (name, value) in self.extensions.global_values {
                env.add_global(name, values::from_json(&value));
            }
            for (name, f) in self.extensions.global_functions {
                env.add_function(name, move |args: Rest<Value>| {
                    let args: Vec<serde_json::Value> = args
                        .iter()
                        .filter(|a| !a.is_kwargs())
                        .map(|a| values::to_json(a).unwrap_or(serde_json::Value::Null))
                        .collect();
                    match f(&args) {
                        Ok(Some(out)) => Ok(values::from_json(&out)),
                        Ok(None) => Ok(Value::UNDEFINED),
                        Err(ExtensionError(msg)) => Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg)),
                    }
                });
            }
        }

        Renderer {
            env,
            delims,
            fuel: self.fuel,
            output_limit: self.output_limit,
            documented,
            single_expr: SINGLE_EXPR.clone(),
            integrations: self.integrations,
            extensions,
        }
    }
}

/// Renders nunjucks templates the way Backstage's scaffolder does.
/// Configured once; cheap to share between tasks (`Send + Sync`).
#[derive(Clone)]
pub struct Renderer {
    env: Environment<'static>,
    delims: syntax::Delimiters,
    fuel: u64,
    output_limit: usize,
    documented: Vec<(String, serde_json::Value)>,
    single_expr: Option<regex::Regex>,
    /// The SCM hosts `parseRepoUrl` knows; actions that render files build
    /// their renderers with the same ones.
    integrations: Integrations,
    /// The filters and globals added to the built-in ones; actions that
    /// render files build their renderers with the same ones.
    extensions: Extensions,
}

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renderer")
            .field("variable_start", &self.delims.var_start)
            .field("fuel", &self.fuel)
            .field("output_limit", &self.output_limit)
            .finish_non_exhaustive()
    }
}

impl Default for Renderer {
    fn default() -> Self {
        Renderer::new()
    }
}

/// Collects output up to a byte limit.
struct LimitedWriter {
    buf: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl io::Write for LimitedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("output limit exceeded"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Renderer {
    /// Backstage's step renderer: `${{ }}` variables, all filters.
    pub fn new() -> Renderer {
        RendererBuilder::default().build()
    }

    /// A renderer for `fetch:template` with its syntax options.
    pub fn with_options(opts: RenderOptions) -> Renderer {
        RendererBuilder::default().options(opts).build()
    }

    /// The SCM hosts this renderer's `parseRepoUrl` knows.
    pub fn integrations(&self) -> &Integrations {
        &self.integrations
    }

    /// The filters and globals added to the built-in ones.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Starts a renderer with extra filters, globals or integrations.
    pub fn builder() -> RendererBuilder {
        RendererBuilder::default()
    }

    /// The `templating-extensions` listing of this renderer: Backstage's
    /// filters plus documented custom ones.
    pub fn templating_extensions(&self) -> serde_json::Value {
        extensions::listing(&self.documented)
    }

    /// Renders text (file contents, file and directory names, `if`
    /// strings). Undefined values print as empty text.
    pub fn render_str(&self, template: &str, context: &serde_json::Value) -> Result<String, TemplateError> {
        self.render_with(template, &context_value(context))
    }

    /// Renders a step input, `if`, `each` or `output` value recursively, as
    /// Backstage's workflow runner does:
    /// - a string that is a single `${{ expr }}` keeps the JSON type of
    ///   `expr` (rendered through `dump` and parsed back);
    /// - other strings render to text;
    /// - an empty result is `undefined`: the key is removed from its object
    ///   (`null` inside arrays, `None` at top level);
    /// - a string whose rendering fails is kept unchanged.
    pub fn render_value(&self, value: &serde_json::Value, context: &serde_json::Value) -> Option<serde_json::Value> {
        let ctx = context_value(context);
        self.render_node(value, &ctx)
    }

    fn render_node(&self, value: &serde_json::Value, ctx: &Value) -> Option<serde_json::Value> {
        match value {
            serde_json::Value::String(s) => self.render_step_string(s, ctx),
            serde_json::Value::Array(items) => Some(serde_json::Value::Array(
                items
                    .iter()
                    .map(|i| self.render_node(i, ctx).unwrap_or(serde_json::Value::Null))
                    .collect(),
            )),
            serde_json::Value::Object(map) => Some(serde_json::Value::Object(
                map.iter()
                    .filter_map(|(k, v)| self.render_node(v, ctx).map(|v| (k.clone(), v)))
                    .collect(),
            )),
            other => Some(other.clone()),
        }
    }

    fn render_step_string(&self, s: &str, ctx: &Value) -> Option<serde_json::Value> {
        if syntax::is_single_node(s) {
            // Backstage: `${{ x }}` → `${{ ( x ) | dump }}`, then JSON.parse.
            let wrapped = match &self.single_expr {
                Some(re) => re.replace_all(s, "$${{ ( ${1} ) | dump }}").into_owned(),
                None => s.to_string(),
            };
            if let Ok(text) = self.render_with(&wrapped, ctx) {
                if text.is_empty() {
                    return None;
                }
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    return Some(v);
                }
            }
        }
        match self.render_with(s, ctx) {
            Ok(text) if text.is_empty() => None,
            Ok(text) => Some(serde_json::Value::String(text)),
            Err(_) => Some(serde_json::Value::String(s.to_string())),
        }
    }

    fn render_with(&self, template: &str, ctx: &Value) -> Result<String, TemplateError> {
        let source = syntax::translate(template, &self.delims);
        let env: &Environment<'_> = &self.env;
        let tmpl = env.template_from_str(&source).map_err(|e| self.map_error(e))?;
        let mut out = LimitedWriter {
            buf: Vec::new(),
            limit: self.output_limit,
            exceeded: false,
        };
        let result = tmpl.render_captured_to(ctx.clone(), &mut out);
        if out.exceeded {
            return Err(TemplateError::OutputTooLarge(self.output_limit));
        }
        result.map_err(|e| self.map_error(e))?;
        String::from_utf8(out.buf).map_err(|e| TemplateError::Render(e.to_string()))
    }

    fn map_error(&self, e: minijinja::Error) -> TemplateError {
        let message = match e.detail() {
            Some(detail) => match e.line() {
                Some(line) => format!("{detail} (line {line})"),
                None => detail.to_string(),
            },
            None => e.to_string(),
        };
        match e.kind() {
            ErrorKind::SyntaxError => TemplateError::Syntax(message),
            ErrorKind::OutOfFuel => TemplateError::FuelExhausted(self.fuel),
            ErrorKind::UnknownFilter => TemplateError::Render(format!("Unknown template filter: {message}")),
            _ => TemplateError::Render(message),
        }
    }
}

fn context_value(context: &serde_json::Value) -> Value {
    match context {
        serde_json::Value::Object(_) => values::from_json(context),
        _ => values::from_json(&serde_json::Value::Object(serde_json::Map::new())),
    }
}

#[cfg(test)]
mod tests;
