//! mettaton: dedicated game servers run declaratively.
//!
//! A `GameServer` resource is reconciled onto a runtime (Kubernetes, or Docker
//! Swarm) through the [`orchestrator`] abstraction. See ARCHITECTURE.md for how
//! the modules fit together.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod controller;
pub mod events;
pub mod facade;
pub mod leader;
pub mod metrics;
pub mod orchestrator;
pub mod plan;
pub mod quantity;
pub mod reading;
pub mod schedule;
pub mod status;
pub mod supervisor;
pub mod template;
pub mod validation;

#[cfg(test)]
pub(crate) mod fixtures;
