use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::bridge::Bridges;
use super::{Action, ListedExample};

/// Action id → action: the built-in ones, whose ids are unique (a duplicate
/// is a start-up bug), and those of the configured action bridges, which
/// come and go with the bridges' lists (a built-in action wins on a clash).
#[derive(Clone, Default)]
pub struct ActionRegistry {
    actions: BTreeMap<String, Arc<dyn Action>>,
    bridges: Option<Arc<Bridges>>,
}

/// One entry of `GET /v2/actions`.
#[derive(Debug, Clone, Serialize)]
pub struct ActionInfo {
    pub id: String,
    /// Absent when the action has none, as Backstage lists it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub examples: Vec<ListedExample>,
    pub schema: ActionSchema,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionSchema {
    pub input: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

impl ActionRegistry {
    pub fn new(actions: Vec<Arc<dyn Action>>) -> ActionRegistry {
        let mut registry = ActionRegistry::default();
        for action in actions {
            registry.register(action);
        }
        registry
    }

    /// # Panics
    /// When an action with the same id is already registered.
    pub fn register(&mut self, action: Arc<dyn Action>) {
        let id = action.id().to_owned();
        assert!(!self.actions.contains_key(&id), "action {id} is registered twice");
        self.actions.insert(id, action);
    }

    /// Adds the actions of the action bridges, looked up after the built-in ones.
    pub fn with_bridges(mut self, bridges: Arc<Bridges>) -> ActionRegistry {
        self.bridges = Some(bridges);
        self
    }

    /// The ids of the built-in actions (a bridged action with one of them is
    /// not used).
    pub fn native_ids(&self) -> std::collections::BTreeSet<String> {
        self.actions.keys().cloned().collect()
    }

    pub fn get(&self, id: &str) -> Option<Arc<dyn Action>> {
        self.actions
            .get(id)
            .cloned()
            .or_else(|| self.bridges.as_ref().and_then(|b| b.get(id)))
    }

    pub fn list(&self) -> Vec<ActionInfo> {
        let mut all: BTreeMap<String, Arc<dyn Action>> = self
            .bridges
            .as_ref()
            .map(|b| b.actions().into_iter().map(|a| (a.id().to_owned(), a)).collect())
            .unwrap_or_default();
        all.extend(self.actions.iter().map(|(id, a)| (id.clone(), a.clone())));
        all.values()
            .map(|a| ActionInfo {
                id: a.id().to_owned(),
                description: Some(a.description().to_owned()).filter(|d| !d.is_empty()),
                examples: a.listed_examples(),
                schema: ActionSchema {
                    input: a.input_schema(),
                    output: a.output_schema(),
                },
            })
            .collect()
    }
}
