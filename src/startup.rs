//! Wires the store, templates, actions, worker and HTTP server once; `main`
//! and the tests both build the service through `Application::build`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Condition};
use actix_web::{web, App, HttpServer};
use tokio_util::sync::CancellationToken;

use crate::actions::bridge::Bridges;
use crate::actions::{builtin_actions_with, ActionDeps, ActionRegistry};
use crate::backoff::Backoff;
use crate::config::Settings;
use crate::engine::{Runner, Worker};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::service::{DryRunService, EventHub, MetricsService, TaskService};
use crate::store::Store;
use crate::template::catalog::CatalogTemplateSource;
use crate::template::git::GitTemplateSource;
use crate::template::{DirTemplateSource, TemplateSource, Templates};
use crate::templating::Renderer;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("invalid SCM integration: {0}")]
    Integration(#[from] crate::scm::IntegrationError),
    #[error("invalid catalog configuration: {0}")]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("invalid auth configuration: {0}")]
    Auth(#[from] crate::auth::AuthConfigError),
    #[error("invalid permission configuration: {0}")]
    Permission(String),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    #[error(transparent)]
    Reseal(#[from] crate::service::ResealError),
    #[error(transparent)]
    Bridge(#[from] crate::actions::bridge::BridgeError),
    #[error(transparent)]
    Promotion(#[from] crate::promotion::PromotionConfigError),
}

pub struct Application {
    port: u16,
    server: Server,
    worker: Option<Worker>,
    /// How long shutdown waits for the worker: its grace period plus time
    /// to release what is still running.
    worker_stop_limit: Duration,
    shutdown: CancellationToken,
    store: Store,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        // Refuse an unprotected public bind before touching the database.
        crate::auth::Authenticator::from_settings(&settings)?;
        let store = Store::connect(&settings.database).await?;
        store.migrate().await?;
        Application::build_with_store(settings, store).await
    }

    /// As [`Application::build`], but a database that cannot be reached yet
    /// is waited for (`serve`): the process retries with backoff, logging each
    /// attempt, and binds its port only once connected, so probes see it
    /// unready (connection refused) rather than failing requests.
    /// Configuration errors (a malformed URL) still fail at once.
    pub async fn build_waiting_for_database(settings: Settings) -> Result<Application, StartupError> {
        crate::auth::Authenticator::from_settings(&settings)?;
        let store = connect_with_retry(&settings.database).await?;
        store.migrate().await?;
        Application::build_with_store(settings, store).await
    }

    pub async fn build_with_store(settings: Settings, store: Store) -> Result<Application, StartupError> {
        let auth = Arc::new(crate::auth::Authenticator::from_settings(&settings)?);
        let permissions = crate::auth::permissions::PermissionClient::from_settings(
            &settings.permission,
            settings.auth.backstage.as_ref().map(|b| b.base_url.as_str()),
        )
        .map_err(StartupError::Permission)?
        .map(Arc::new);
        let keyring = Arc::new(crate::secrets::Keyring::from_settings(&settings.secrets)?);
        // Secrets stored before encryption existed are sealed now; a worker
        // never runs a task with plaintext secrets.
        let sealed = crate::service::reseal_stored(&keyring, &store, true).await?;
        if sealed.resealed > 0 {
            tracing::info!(tasks = sealed.resealed, "encrypted task secrets stored in plaintext");
        }
        let listener = TcpListener::bind(&settings.server.bind).map_err(|source| StartupError::Bind {
            addr: settings.server.bind.clone(),
            source,
        })?;
        let port = listener.local_addr()?.port();

        let dir_source = DirTemplateSource::load(&settings.templates.dirs);
        for (path, problem) in &dir_source.problems {
            tracing::warn!(path = %path.display(), problem = %problem, "template skipped");
        }
        let names: Vec<String> = dir_source.templates().map(|t| t.entity_ref.to_string()).collect();
        tracing::info!(count = names.len(), templates = ?names, "templates loaded");
        let deps = action_deps(&settings)?;
        let reader = Arc::new(crate::scm::reader::UrlReader::new(
            deps.integrations.clone(),
            settings.templates.cache_dir(),
        ));
        // The built-in promotion template first: no configured template shadows it.
        let builtin = crate::service::promotion_templates()
            .map_err(|e| std::io::Error::other(format!("the built-in promotion template: {e}")))?;
        let mut sources: Vec<Arc<dyn TemplateSource>> = vec![Arc::new(builtin), Arc::new(dir_source)];
        if !settings.templates.urls.is_empty() {
            let git_source = GitTemplateSource::load(&settings.templates.urls, &reader).await;
            for (url, problem) in &git_source.problems {
                tracing::warn!(url = %url, problem = %problem, "template skipped");
            }
            sources.push(Arc::new(git_source));
        }
        if let Some(catalog) = &deps.catalog {
            sources.push(Arc::new(CatalogTemplateSource::new(catalog.clone())));
        }
        let templates = Templates::new(sources);

        let limits = &settings.limits;
        let mut actions = ActionRegistry::new(builtin_actions_with(&deps));
        // Action bridges: their lists are read once before serving (a
        // bridge that does not answer is logged and asked again), then kept
        // fresh in the background.
        let bridges = Arc::new(Bridges::new(&settings.actions.bridges, actions.native_ids())?);
        let mut builder = Renderer::builder()
            .integrations(deps.integrations.templating())
            .fuel(limits.template_fuel)
            .output_limit(limits.template_output_bytes);
        if !bridges.is_empty() {
            bridges.refresh().await;
            actions = actions.with_bridges(bridges.clone());
            builder = with_bridged_extensions(builder, &bridges).await;
        }
        let renderer = Arc::new(builder.build());
        // Fetch actions read remote skeletons (GitHub, the local git host) through it.
        let runner = Runner::new(actions.clone(), renderer.clone())
            .with_limits(limits)
            .with_reader(reader.clone())
            .with_environment(&settings.default_environment);
        let dry_run_dir = crate::service::dry_run_dir(
            settings.worker.dry_run_dir.as_deref(),
            settings.worker.work_dir.as_deref(),
            settings.actions.bridges.iter().any(|b| b.shared_workspace),
        );
        tracing::debug!(dir = %dry_run_dir.display(), "dry-runs lay out their files here");
        let dry_run = DryRunService::new(runner.clone(), Some(dry_run_dir)).with_limits(limits);
        let shutdown = CancellationToken::new();
        if !bridges.is_empty() {
            tokio::spawn(bridges.clone().keep_fresh(shutdown.clone()));
        }
        let metrics = Arc::new(Metrics::new());

        let updates = crate::service::UpdateService::new(
            store.clone(),
            templates.clone(),
            runner.clone(),
            deps.integrations.clone(),
            shutdown.clone(),
        )
        .with_reader(reader.clone());
        let worker = settings.worker.enabled.then(|| {
            Worker::new(store.clone(), runner, settings.worker.clone())
                .with_keyring(keyring.clone())
                .with_event_limit(limits.events_per_task)
                .with_workspace_limit(limits.workspace_bytes)
                .with_metrics(metrics.clone())
        });
        let tasks = TaskService::new(store.clone(), templates, renderer, keyring)
            .with_catalog(deps.catalog.clone())
            .with_reader(reader.clone())
            .with_permissions(permissions);
        let state = web::Data::new(AppState {
            settings: settings.clone(),
            promotions: crate::service::PromotionService::new(tasks.clone(), settings.promotion.clone()),
            tasks,
            dry_run,
            events: EventHub::start(store.clone(), shutdown.clone()),
            actions,
            worker_health: worker.as_ref().map(|w| (w.health(), w.health_window())),
            auth,
            streams: crate::service::StreamLimiter::new(limits.sse_streams_per_client),
            metrics: MetricsService::new(store.clone(), metrics),
            autocomplete: {
                let autocomplete = crate::service::AutocompleteService::new(deps.integrations.clone(), reader.clone());
                if bridges.is_empty() {
                    autocomplete
                } else {
                    autocomplete.with_bridges(bridges.clone())
                }
            },
            updates,
        });

        let body_limit = settings.server.body_limit_bytes;
        let cors = settings.server.cors.clone();
        let server = HttpServer::new(move || {
            App::new()
                // Bodies are checked after the caller is known, before any handler.
                .wrap(from_fn(http::content_type::require_json))
                .wrap(from_fn(http::auth::authenticate))
                .wrap(from_fn(http::error::with_request_info))
                .wrap(Condition::new(
                    cors.is_some(),
                    http::cors(&cors.clone().unwrap_or_default()),
                ))
                // Outermost: every answer, CORS and 401s included, is counted and logged.
                .wrap(from_fn(http::observe::observe))
                .app_data(state.clone())
                .configure(|cfg| http::configure(cfg, body_limit))
        })
        .listen(listener)?
        .shutdown_timeout(settings.server.shutdown_grace_seconds)
        .disable_signals()
        .run();

        Ok(Application {
            port,
            server,
            worker,
            worker_stop_limit: Duration::from_secs(settings.worker.shutdown_grace_seconds.saturating_add(30)),
            shutdown,
            store,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A token that stops the server and the worker.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token fires (or the server stops), then
    /// stops accepting requests, lets the worker finish, and returns.
    pub async fn run_until_stopped(self) -> Result<(), std::io::Error> {
        let handle = self.server.handle();
        let shutdown = self.shutdown.clone();
        let worker_stop_limit = self.worker_stop_limit;
        let mut worker = self.worker.map(|w| tokio::spawn(w.run(shutdown.clone())));
        let mut server = tokio::spawn(self.server);
        let result = tokio::select! {
            r = &mut server => {
                tracing::warn!("HTTP server stopped");
                shutdown.cancel();
                r.unwrap_or(Ok(()))
            }
            _ = shutdown.cancelled() => {
                tracing::info!("shutting down");
                // The worker goes first. Releasing its tasks needs pooled
                // connections, and a connection opened by a request lives on
                // that HTTP worker's runtime: once the server stops, it is dead.
                // Requests keep being answered meanwhile; readiness already
                // reports the process as leaving.
                if let Some(worker) = worker.take() {
                    let _ = tokio::time::timeout(worker_stop_limit, worker).await;
                }
                handle.stop(true).await;
                server.await.unwrap_or(Ok(()))
            }
        };
        if let Some(worker) = worker {
            let _ = tokio::time::timeout(worker_stop_limit, worker).await;
        }
        result
    }
}

/// Template filters and globals registered by modules in the action
/// bridges, callable from our templates (read once at start: a bridge that
/// is down then has none until the service restarts).
async fn with_bridged_extensions(
    mut builder: crate::templating::RendererBuilder,
    bridges: &Bridges,
) -> crate::templating::RendererBuilder {
    use crate::templating::ExtensionError;
    for (client, list) in bridges.templating().await {
        for id in list.filters {
            let (client, name) = (client.clone(), id.clone());
            builder = builder.filter(id, move |input, args| {
                client
                    .call_extension("filters", &name, serde_json::json!({ "input": input, "args": args }))
                    .map(|v| (!v.is_null()).then_some(v))
                    .map_err(|e| ExtensionError(e.to_string()))
            });
        }
        for global in list.globals {
            if global.kind == "function" {
                let (client, name) = (client.clone(), global.id.clone());
                builder = builder.global_function(global.id, move |args| {
                    client
                        .call_extension("globals", &name, serde_json::json!({ "args": args }))
                        .map(|v| (!v.is_null()).then_some(v))
                        .map_err(|e| ExtensionError(e.to_string()))
                });
            } else {
                builder = builder.global_value(global.id, global.value);
            }
        }
    }
    builder
}

/// Connects, retrying with doubling delays (0.2 s up to 5 s) for as long as
/// the failure may be transient.
async fn connect_with_retry(settings: &crate::config::DatabaseSettings) -> Result<Store, StartupError> {
    const BACKOFF: Backoff = Backoff::doubling(Duration::from_millis(200)).capped(Duration::from_secs(5));
    let mut attempt: u32 = 1;
    loop {
        match Store::connect(settings).await {
            Ok(store) => {
                if attempt > 1 {
                    tracing::info!(attempt, "database reachable; starting");
                }
                return Ok(store);
            }
            Err(e) if e.is_misconfiguration() => return Err(e.into()),
            Err(e) => {
                let delay = BACKOFF.delay(attempt - 1);
                tracing::warn!(
                    error = %e, attempt, retry_in_ms = delay.as_millis() as u64,
                    "database unavailable at start; retrying before serving"
                );
                tokio::time::sleep(delay).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// The SCM integrations and catalog client the actions use, built from the
/// same settings as the renderer's `parseRepoUrl`.
pub fn action_deps(settings: &Settings) -> Result<ActionDeps, StartupError> {
    let integrations = crate::scm::ScmIntegrations::from_settings(&settings.integrations)?;
    let catalog = match &settings.catalog.base_url {
        Some(url) => Some(Arc::new(crate::catalog::CatalogClient::new(
            url,
            settings.catalog.token.as_ref().map(|t| t.expose().to_owned()),
        )?)),
        None => None,
    };
    Ok(ActionDeps {
        integrations: Arc::new(integrations),
        catalog,
        repo_locks: Arc::default(),
        argocd_repo_url: settings.gitops.argocd_repo_url.clone(),
        promotion: crate::promotion::PromotionDeps::from_settings(&settings.promotion)?.map(Arc::new),
    })
}
