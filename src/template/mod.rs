//! Game templates (issue 16): what a Pterodactyl/Pelican egg holds, for a
//! GameServer to name and fill in. So far: an egg read into one shape
//! whatever its format ([`egg`]), the rules its variables are checked by
//! ([`rules`]), an egg made a `GameTemplate` spec ([`import`]; the resources
//! are in [`crate::api`]), what mettaton checks of a template when it
//! reads one ([`check`]), and a GameServer made from a template resolved into
//! the server that runs ([`resolve`]), and the plan of a GameServer with
//! or without one ([`lookup`]).

pub mod check;
pub mod egg;
pub mod import;
pub mod lookup;
pub mod resolve;
pub mod rules;

pub use check::{Checked, check};
pub use import::{Imported, dns_label, import};
pub use resolve::{Resolved, resolve};
