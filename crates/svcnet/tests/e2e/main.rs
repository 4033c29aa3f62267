//! End-to-end tests (ARCHITECTURE "tests/"): the real `svcnet` binary,
//! served on loopback port 0 and asked by dig, kdig and hand-built
//! hickory-proto packets over UDP and TCP. One test binary; each test runs
//! its own server, so they run in parallel.
//!
//! dig and kdig are required (Debian `bind9-dnsutils`, `knot-dnsutils`):
//! a missing tool fails the tests instead of skipping them.

mod api;
mod api_availability;
mod api_scale;
mod api_vectors;
mod chase;
mod cli;
mod edns;
mod forward;
mod harness;
mod malformed;
mod metrics;
mod operate;
mod reload;
mod seeds;
mod serve;
mod services;
mod tcp;
mod vectors;
