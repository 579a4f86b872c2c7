use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::{Action, ActionExample};

/// Action id → action. Ids are unique: a duplicate is a start-up bug.
#[derive(Clone, Default)]
pub struct ActionRegistry {
    actions: BTreeMap<&'static str, Arc<dyn Action>>,
}

/// One entry of `GET /v2/actions`.
#[derive(Debug, Clone, Serialize)]
pub struct ActionInfo {
    pub id: String,
    pub description: String,
    pub examples: Vec<ActionExample>,
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
        let id = action.id();
        assert!(
            self.actions.insert(id, action).is_none(),
            "action {id} is registered twice"
        );
    }

    pub fn get(&self, id: &str) -> Option<Arc<dyn Action>> {
        self.actions.get(id).cloned()
    }

    pub fn list(&self) -> Vec<ActionInfo> {
        self.actions
            .values()
            .map(|a| ActionInfo {
                id: a.id().to_owned(),
                description: a.description().to_owned(),
                examples: a.examples(),
                schema: ActionSchema {
                    input: a.input_schema(),
                    output: a.output_schema(),
                },
            })
            .collect()
    }
}
