//! The answering engine: pure functions from (snapshot, query) to response
//! bytes (SPEC §2, §2.1, §3, "Protocol"). No sockets, no clocks, no tokio;
//! the rotation of headless answers comes in through [`Context`], so every
//! rule is testable without a network (ARCHITECTURE "sans-IO").

mod engine;
mod zonefile;

pub use engine::{Context, Outcome, Transport, answer, answer_in_zone, warm};
pub use zonefile::{render_zones, rr_lines};
