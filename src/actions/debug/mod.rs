mod log;
mod wait;

pub use log::DebugLog;
pub use wait::DebugWait;
