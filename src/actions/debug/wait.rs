//! `debug:wait`: waits, and stops at once when the task is cancelled.

use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};

pub struct DebugWait;

/// Backstage refuses waits longer than ten minutes.
const MAX_WAIT: Duration = Duration::from_secs(600);

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Waiting period in minutes.
    pub minutes: Option<f64>,
    /// Waiting period in seconds.
    pub seconds: Option<f64>,
    /// Waiting period in milliseconds.
    pub milliseconds: Option<f64>,
}

impl Input {
    fn duration(&self) -> Result<Duration, ActionError> {
        let ms = self.minutes.unwrap_or(0.0) * 60_000.0
            + self.seconds.unwrap_or(0.0) * 1_000.0
            + self.milliseconds.unwrap_or(0.0);
        if !ms.is_finite() || ms < 0.0 {
            return Err(ActionError::InvalidInput(
                "Waiting duration must be a non-negative number".into(),
            ));
        }
        let duration = Duration::from_secs_f64(ms / 1000.0);
        if duration > MAX_WAIT {
            return Err(ActionError::InvalidInput(
                "Waiting duration is longer than the maximum threshold of 0 hours, 10 minutes, 0 seconds".into(),
            ));
        }
        Ok(duration)
    }
}

#[async_trait]
impl ActionHandler for DebugWait {
    type Input = Input;
    const ID: &'static str = "debug:wait";
    const DESCRIPTION: &'static str = "Waits for a certain period of time.";

    fn examples(&self) -> Vec<ActionExample> {
        vec![
            ActionExample {
                description: "Waiting for 50 milliseconds",
                example: "steps:\n  - action: debug:wait\n    id: wait-milliseconds\n    name: Waiting for 50 milliseconds\n    input:\n      milliseconds: 50\n",
            },
            ActionExample {
                description: "Waiting for 5 seconds",
                example: "steps:\n  - action: debug:wait\n    id: wait-5sec\n    name: Waiting for 5 seconds\n    input:\n      seconds: 5\n",
            },
            ActionExample {
                description: "Waiting for 1 minutes",
                example: "steps:\n  - action: debug:wait\n    id: wait-1min\n    name: Waiting for 1 minutes\n    input:\n      minutes: 1\n",
            },
        ]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let duration = input.duration()?;
        tokio::select! {
            _ = tokio::time::sleep(duration) => Ok(()),
            _ = ctx.cancel.cancelled() => Err(ActionError::Cancelled),
        }
    }
}
