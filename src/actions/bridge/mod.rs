//! Actions of action bridges (`bridge/`, docs/action-bridge.md): Node
//! processes hosting Backstage scaffolder modules unchanged. `Bridges` keeps
//! the list of each configured bridge, read at start and refreshed; a
//! `BridgedAction` runs a step there through `client`, with the workspace
//! shared or shipped (`shipping`).

mod client;
mod shipping;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{Action, ActionContext, ActionError, ActionExample, ListedExample};
use crate::backoff::{Backoff, Jitter};
use crate::config::BridgeSettings;

pub use client::{BridgeClient, BridgeError, BridgedGlobal, TemplatingList};

/// One action as a bridge lists it (`GET …/actions`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgedActionInfo {
    pub id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub examples: Vec<RemoteExample>,
    #[serde(default)]
    pub schema: RemoteSchema,
    #[serde(default)]
    pub supports_dry_run: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RemoteSchema {
    #[serde(default)]
    pub input: Option<Value>,
    #[serde(default)]
    pub output: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RemoteExample {
    pub description: String,
    pub example: String,
}

/// An action that runs in a bridge.
pub struct BridgedAction {
    info: BridgedActionInfo,
    client: Arc<BridgeClient>,
}

impl BridgedAction {
    fn new(info: BridgedActionInfo, client: Arc<BridgeClient>) -> BridgedAction {
        BridgedAction { info, client }
    }

    /// The bridge this action runs in.
    pub fn bridge_url(&self) -> &str {
        self.client.url()
    }
}

#[async_trait]
impl Action for BridgedAction {
    fn id(&self) -> &str {
        &self.info.id
    }
    fn description(&self) -> &str {
        &self.info.description
    }
    fn input_schema(&self) -> Value {
        self.info.schema.input.clone().unwrap_or_else(|| serde_json::json!({}))
    }
    fn output_schema(&self) -> Option<Value> {
        self.info.schema.output.clone()
    }
    /// The bridge's examples are listed (`listed_examples`), not run by
    /// our example tests: they are the module's own.
    fn examples(&self) -> Vec<ActionExample> {
        Vec::new()
    }
    fn listed_examples(&self) -> Vec<ListedExample> {
        self.info
            .examples
            .iter()
            .map(|e| ListedExample {
                description: e.description.clone(),
                example: e.example.clone(),
            })
            .collect()
    }
    fn supports_dry_run(&self) -> bool {
        self.info.supports_dry_run
    }
    async fn run(&self, ctx: &mut ActionContext, input: Value) -> Result<(), ActionError> {
        // Backstage validates an action's input against its schema before
        // the handler runs; so do we, with the same wording.
        if let Err(errors) = crate::validation::validate(&self.input_schema(), &input) {
            return Err(ActionError::InvalidInput(format!(
                "Invalid input passed to action {}, {}",
                self.info.id,
                crate::validation::stacks(&errors)
            )));
        }
        self.client.run(&self.info.id, ctx, input).await
    }
}

/// The actions of every configured bridge, refreshed in the background.
pub struct Bridges {
    clients: Vec<Arc<BridgeClient>>,
    /// Built-in action ids: a bridged action with one of them is not used.
    native: BTreeSet<String>,
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    /// The last list each bridge gave (by bridge index); `None`: never read.
    lists: Vec<Option<Vec<BridgedActionInfo>>>,
    /// The merged view: id → action (the first bridge listing an id wins).
    actions: BTreeMap<String, Arc<BridgedAction>>,
    /// Clashes already logged, so each is logged once.
    clashes_logged: HashSet<String>,
}

/// The wait between reads of a bridge that did not answer: 1 s doubling.
const UNREACHABLE_BACKOFF: Backoff = Backoff::doubling(Duration::from_secs(1)).jittered(Jitter::Full);

impl Bridges {
    pub fn new(settings: &[BridgeSettings], native: BTreeSet<String>) -> Result<Bridges, BridgeError> {
        let clients = settings
            .iter()
            .map(|s| BridgeClient::new(s).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let state = State {
            lists: vec![None; clients.len()],
            ..State::default()
        };
        Ok(Bridges {
            clients,
            native,
            state: RwLock::new(state),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<Arc<dyn Action>> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.actions.get(id).map(|a| a.clone() as Arc<dyn Action>)
    }

    /// Every usable bridged action (clashing ones left out).
    pub fn actions(&self) -> Vec<Arc<dyn Action>> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.actions.values().map(|a| a.clone() as Arc<dyn Action>).collect()
    }

    /// Reads every bridge's list once. Returns how many bridges answered;
    /// one that does not keeps its last list (its steps fail clearly while
    /// it is down) and is logged with the reason.
    pub async fn refresh(&self) -> usize {
        let mut answered = 0;
        for (index, client) in self.clients.iter().enumerate() {
            match client.list().await {
                Ok(list) => {
                    answered += 1;
                    let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
                    let first = state.lists[index].is_none();
                    state.lists[index] = Some(list);
                    if first {
                        let count = state.lists[index].as_ref().map_or(0, Vec::len);
                        tracing::info!(
                            bridge = client.url(),
                            actions = count,
                            "action bridge listed its actions"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        bridge = client.url(),
                        error = %e,
                        "action bridge unreachable; its actions are not listed until it answers (retrying)"
                    );
                }
            }
        }
        self.merge();
        answered
    }

    fn merge(&self) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let mut actions: BTreeMap<String, Arc<BridgedAction>> = BTreeMap::new();
        let mut clashes = Vec::new();
        for (index, list) in state.lists.iter().enumerate() {
            let Some(list) = list else { continue };
            let client = &self.clients[index];
            for info in list {
                if self.native.contains(&info.id) {
                    clashes.push((info.id.clone(), client.url().to_owned(), "a built-in action".to_owned()));
                    continue;
                }
                if let Some(existing) = actions.get(&info.id) {
                    clashes.push((
                        info.id.clone(),
                        client.url().to_owned(),
                        existing.bridge_url().to_owned(),
                    ));
                    continue;
                }
                let reused = state
                    .actions
                    .get(&info.id)
                    .filter(|a| a.client.url() == client.url() && same_listing(&a.info, info))
                    .cloned();
                let action = reused.unwrap_or_else(|| Arc::new(BridgedAction::new(info.clone(), client.clone())));
                actions.insert(info.id.clone(), action);
            }
        }
        for (id, bridge, winner) in clashes {
            if state.clashes_logged.insert(format!("{id} {bridge}")) {
                tracing::warn!(action = %id, bridge = %bridge, used = %winner, "action {id} of the action bridge is not used: {winner} has the same id");
            }
        }
        state.actions = actions;
    }

    /// Keeps the lists fresh until `stop` fires: a bridge that did not
    /// answer is asked again soon (1 s doubling, up to its refresh period),
    /// the others every `refresh_seconds`.
    pub async fn keep_fresh(self: Arc<Self>, stop: CancellationToken) {
        let period = self
            .clients
            .iter()
            .map(|c| c.refresh_every())
            .min()
            .unwrap_or(Duration::from_secs(30));
        let mut failures = 0u32;
        loop {
            let wait = if self.all_listed() && failures == 0 {
                period
            } else {
                UNREACHABLE_BACKOFF.capped(period).delay(failures)
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            if self.refresh().await == self.clients.len() {
                failures = 0;
            } else {
                failures = failures.saturating_add(1);
            }
        }
    }

    /// Suggestions of the autocomplete provider `provider`, from the first
    /// bridge that has it; `None` when none has.
    pub async fn autocomplete(
        &self,
        provider: &str,
        resource: &str,
        token: &str,
        context: &serde_json::Map<String, Value>,
    ) -> Result<Option<Value>, BridgeError> {
        for client in &self.clients {
            if let Some(results) = client.autocomplete(provider, resource, token, context).await? {
                return Ok(Some(results));
            }
        }
        Ok(None)
    }

    /// The template filters and globals of every bridge that answers now
    /// (read once, when the renderer is built), with the bridge to call.
    pub async fn templating(&self) -> Vec<(Arc<BridgeClient>, TemplatingList)> {
        let mut all = Vec::new();
        for client in &self.clients {
            match client.templating().await {
                Ok(list) => all.push((client.clone(), list)),
                Err(e) => tracing::warn!(
                    bridge = client.url(),
                    error = %e,
                    "the action bridge's template filters and globals are not available"
                ),
            }
        }
        all
    }

    fn all_listed(&self) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.lists.iter().all(Option::is_some)
    }
}

fn same_listing(a: &BridgedActionInfo, b: &BridgedActionInfo) -> bool {
    a.description == b.description
        && a.supports_dry_run == b.supports_dry_run
        && a.schema.input == b.schema.input
        && a.schema.output == b.schema.output
        && a.examples.len() == b.examples.len()
        && a.examples
            .iter()
            .zip(&b.examples)
            .all(|(x, y)| x.description == y.description && x.example == y.example)
}
