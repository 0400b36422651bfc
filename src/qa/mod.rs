//! The QA kit: tools that test any RTM server through protocol v1 alone.
//!
//! - [`raw`]: a raw protocol connection (JSON over WebSocket) used by `check` and `script`,
//!   so that they test the server and not our client library.
//! - [`check`]: the conformance suite, one named case per rule of docs/protocol.md.
//! - [`script`]: the scenario language and its runner.
//! - [`bench`](mod@bench): the load generator (named workloads, HDR percentiles, SVG plots), and
//!   its pass/fail budgets for CI (`bench::threshold`: `p99<50ms`).
//! - [`headless`]: a screenless client driven by stdin lines, built on `client/`.
//! - [`report`]: text, JSON and JUnit output shared by `check` and `script`.
//! - [`html`]: the self-contained HTML report of `check`, `bench` and `script`.
//! - [`media`]: files and images over a raw connection and HTTP (`check`, `script`,
//!   `bench`).
//! - [`placement`]: which server each user goes to when `check` or `script` is given
//!   several (the nodes of a cluster).

pub mod bench;
pub mod check;
pub mod headless;
pub mod html;
pub mod media;
pub mod placement;
pub mod raw;
pub mod report;
pub mod script;
